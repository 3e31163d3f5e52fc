"""Wait on the triggerer until a change request is authorized, rejected or canceled (no worker held)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from release_mgmt.change_service.service_token import TaskIdentity
from release_mgmt.errors import ServiceNowError
from release_mgmt.hooks.change_backend import backend_named
from release_mgmt.retry import RETRYABLE_STATUSES
from release_mgmt.rules.change import AUTHORIZED, STOPPED, ChangeState
from release_mgmt.triggers.events import ChangeDecided, ChangeError, ChangeTimedOut


class ChangeAuthorizationTrigger(BaseTrigger):
    """Polls the change with backoff (``poll_seconds`` doubling up to ``max_poll_seconds``) until it is
    authorized or stopped, or ``deadline`` (epoch seconds) passes. ``backend`` names the change backend the
    operator chose for the environment's ``change`` settings; ``identity`` is the waiting task."""

    def __init__(
        self,
        change: dict[str, Any],
        sys_id: str,
        deadline: float,
        poll_seconds: float = 15,
        max_poll_seconds: float = 600,
        *,
        backend: str = "servicenow",
        identity: dict[str, str] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # BaseTrigger.__init__ is not annotated
        self.backend = backend
        self.change = dict(change)
        self.sys_id = sys_id
        self.deadline = deadline
        self.poll_seconds = poll_seconds
        self.max_poll_seconds = max_poll_seconds
        self.identity = dict(identity) if identity else None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__name__}",
            {
                "change": self.change,
                "sys_id": self.sys_id,
                "deadline": self.deadline,
                "poll_seconds": self.poll_seconds,
                "max_poll_seconds": self.max_poll_seconds,
                "backend": self.backend,
                "identity": self.identity,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        identity = TaskIdentity(**self.identity) if self.identity else None
        wait = self.poll_seconds
        try:
            backend = backend_named(self.backend, self.change, identity)
        except LookupError as exc:
            yield TriggerEvent(ChangeError(status="error", message=str(exc)))
            return
        state, number, error = 0, "", ""
        while True:
            try:
                record = await backend.get_async(self.sys_id)
                decided = ChangeState.of(record)
            except ServiceNowError as exc:
                if not transient(exc):  # refused, unknown change: waiting longer cannot help
                    yield TriggerEvent(ChangeError(status="error", message=str(exc)))
                    return
                error = str(exc)  # the service is down or overloaded: keep waiting until the deadline
                self.log.warning("change %s: no answer, trying again until the deadline: %s", self.sys_id, exc)
            except ValueError as exc:
                yield TriggerEvent(ChangeError(status="error", message=str(exc)))
                return
            else:
                state, number, error = int(decided), str(record.get("number", "")), ""
                if decided in AUTHORIZED or decided in STOPPED:
                    approval = str(record.get("approval", ""))
                    yield TriggerEvent(ChangeDecided(status="decided", state=state, approval=approval, number=number))
                    return
            if time.time() >= self.deadline:
                yield TriggerEvent(ChangeTimedOut(status="timeout", state=state, number=number, error=error))
                return
            await asyncio.sleep(min(wait, max(0.0, self.deadline - time.time())))
            wait = min(wait * 2, self.max_poll_seconds)


def transient(exc: ServiceNowError) -> bool:
    """A failure worth waiting out: no answer at all, or a status the retry policy retries (429, 5xx)."""
    return exc.status == 0 or exc.status in RETRYABLE_STATUSES
