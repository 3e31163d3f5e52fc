"""The ServiceNow change backend (Table API through :class:`ServiceNowChangeHook`), and the built-in service,
which speaks the same API and is selected when the environment names ``servicenow_default`` and no such
connection exists."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from release_mgmt.change_service.service_token import SERVICE_PRINCIPAL, TaskIdentity
from release_mgmt.hooks.servicenow import DEFAULT_CONN_ID, ServiceNowChangeHook
from release_mgmt.hooks.servicenow_async import get_record
from release_mgmt.rules.change import CLOSED, ChangeState


class ServiceNowBackend:
    """Change requests in a ServiceNow instance, as the user of the environment's connection."""

    name: ClassVar[str] = "servicenow"

    def __init__(self, settings: Mapping[str, Any], identity: TaskIdentity | None, **hook_settings: Any) -> None:
        self.conn_id = str(settings.get("connection") or DEFAULT_CONN_ID)
        self.identity = identity
        self.hook_settings = hook_settings
        self.hook = self._hook()

    def _hook(self) -> ServiceNowChangeHook:
        return ServiceNowChangeHook(self.conn_id, identity=self.identity, builtin=False, **self.hook_settings)

    @classmethod
    def selects(cls, settings: Mapping[str, Any]) -> bool:
        return True

    def creator(self) -> str:
        return self.hook.login()

    def ensure(self, correlation_id: str, fields: Mapping[str, Any]) -> tuple[dict[str, str], bool]:
        return self.hook.ensure(correlation_id, fields)

    def find(self, correlation_id: str) -> dict[str, str] | None:
        return self.hook.find(correlation_id)

    def get(self, sys_id: str) -> dict[str, str]:
        return self.hook.get(sys_id)

    async def get_async(self, sys_id: str) -> dict[str, str]:
        return await get_record(self.hook, sys_id)

    def transition(self, sys_id: str, state: ChangeState, **fields: Any) -> dict[str, str]:
        return self.hook.update(sys_id, {"state": int(state), **fields})

    def note(self, sys_id: str, text: str) -> None:
        self.hook.add_work_note(sys_id, text)

    def close(self, sys_id: str, code: str, notes: str) -> dict[str, str]:
        return self.hook.update(sys_id, {"state": int(CLOSED), "close_code": code, "close_notes": notes})

    def decisions(self, sys_id: str) -> list[dict[str, str]]:
        return [
            {
                "approver": str(r.get("approver", "")),
                "state": str(r.get("state", "")),
                "comments": str(r.get("comments", "")),
                "at": str(r.get("sys_updated_on", "")),
            }
            for r in self.hook.approvals(sys_id)
            if r.get("state") in ("approved", "rejected")
        ]


class BuiltinServiceBackend(ServiceNowBackend):
    """The built-in change service inside Airflow, called as the release task itself (service token)."""

    name: ClassVar[str] = "builtin"

    def _hook(self) -> ServiceNowChangeHook:
        return ServiceNowChangeHook(DEFAULT_CONN_ID, identity=self.identity, builtin=True, **self.hook_settings)

    @classmethod
    def selects(cls, settings: Mapping[str, Any]) -> bool:
        """The environment names the default connection and this Airflow has none: the built-in service."""
        if str(settings.get("connection") or DEFAULT_CONN_ID) != DEFAULT_CONN_ID:
            return False
        return ServiceNowChangeHook(DEFAULT_CONN_ID).builtin

    def creator(self) -> str:
        return SERVICE_PRINCIPAL
