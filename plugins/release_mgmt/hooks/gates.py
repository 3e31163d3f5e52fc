"""The client of the built-in service's gate progress (``change_service/gate_api.py``), as an approval gate task
calls it: with a service token bound to the gate task, a few quick tries (the gate goes on without it)."""

from __future__ import annotations

from typing import Any

from release_mgmt.change_service.contract import GATES
from release_mgmt.change_service.service_token import TaskIdentity
from release_mgmt.hooks.servicenow import ServiceNowChangeHook


class GateProgressClient:
    def __init__(self, identity: TaskIdentity, **hook_settings: Any) -> None:
        settings = {"timeout": 10, "retries": 2, "backoff": 0.5, **hook_settings}
        self.hook = ServiceNowChangeHook.builtin_service(identity=identity, **settings)

    def load(self) -> dict[str, Any]:
        """{"progress": what the gate kept (None when nothing), "answers": its earlier tries' answers}."""
        result: dict[str, Any] = self.hook.call("GET", f"{GATES}/progress")
        return result

    def save(
        self, deadline: str, votes: list[dict[str, Any]], refused: list[dict[str, Any]], decided: str = ""
    ) -> None:
        body = {"deadline": deadline, "votes": votes, "refused": refused, "decided": decided}
        self.hook.call("PUT", f"{GATES}/progress", body)
