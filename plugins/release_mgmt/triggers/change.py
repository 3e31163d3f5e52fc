"""Wait on the triggerer until a change request is authorized, rejected or canceled (no worker held)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from release_mgmt.change_service.service_token import TaskIdentity
from release_mgmt.hooks.servicenow import ServiceNowChangeHook, ServiceNowError

AUTHORIZED = (-2, -1)  # Scheduled, Implement
STOPPED = (3, 4)  # Closed, Canceled


class ChangeAuthorizationTrigger(BaseTrigger):
    """Polls the change with backoff (``poll_seconds`` doubling up to ``max_poll_seconds``) until it is
    authorized or stopped, or ``deadline`` (epoch seconds) passes."""

    def __init__(
        self,
        conn_id: str,
        sys_id: str,
        deadline: float,
        poll_seconds: float = 15,
        max_poll_seconds: float = 600,
        *,
        identity: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.identity = dict(identity) if identity else None  # the waiting task (the built-in service's token)
        self.conn_id = conn_id
        self.sys_id = sys_id
        self.deadline = deadline
        self.poll_seconds = poll_seconds
        self.max_poll_seconds = max_poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__name__}",
            {
                "conn_id": self.conn_id,
                "sys_id": self.sys_id,
                "deadline": self.deadline,
                "poll_seconds": self.poll_seconds,
                "max_poll_seconds": self.max_poll_seconds,
                "identity": self.identity,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        identity = TaskIdentity(**self.identity) if self.identity else None
        hook = ServiceNowChangeHook(self.conn_id, identity=identity)
        wait = self.poll_seconds
        while True:
            try:
                record = await asyncio.to_thread(hook.get, self.sys_id)
            except ServiceNowError as exc:
                yield TriggerEvent({"status": "error", "message": str(exc)})
                return
            state = int(record["state"])
            if state in AUTHORIZED or state in STOPPED:
                yield TriggerEvent(
                    {
                        "status": "decided",
                        "state": state,
                        "approval": record.get("approval", ""),
                        "number": record.get("number", ""),
                    }
                )
                return
            if time.time() >= self.deadline:
                yield TriggerEvent({"status": "timeout", "state": state, "number": record.get("number", "")})
                return
            await asyncio.sleep(min(wait, max(0.0, self.deadline - time.time())))
            wait = min(wait * 2, self.max_poll_seconds)
