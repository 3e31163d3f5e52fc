"""Wait on the triggerer, in line, until an environment lock is granted (no worker held)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from release_mgmt.change_service.contract import Holder, describe
from release_mgmt.change_service.service_token import TaskIdentity
from release_mgmt.errors import ServiceNowError
from release_mgmt.hooks.locks import LockClient
from release_mgmt.triggers.events import LockGranted, LockTimedOut, LockWaitingLong

#: how long one acquire call lets the service hold it until the lock is granted (its HTTP timeout is 30 s)
WAIT_PER_CALL = 20.0


class EnvironmentLockTrigger(BaseTrigger):
    """Waits in line until the lock is granted or ``deadline`` (epoch seconds) passes: each call asks the service
    to answer as soon as the lock is this run's (up to WAIT_PER_CALL), so a release is handed over at once.
    Service errors (and a service that answers at once) are retried every ``poll_seconds``, growing to
    ``max_poll_seconds``, until the deadline."""

    def __init__(
        self,
        lock: str,
        holder: dict[str, str],
        deadline: float,
        poll_seconds: float = 2.0,
        max_poll_seconds: float = 30.0,
        *,
        task_id: str = "",
        notice_at: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # BaseTrigger.__init__ is not annotated
        self.task_id = task_id  # the waiting task: the service token is bound to it
        self.lock = lock
        self.holder = dict(holder)
        self.deadline = deadline
        self.poll_seconds = poll_seconds
        self.max_poll_seconds = max_poll_seconds
        self.notice_at = notice_at  # when still waiting then, the operator is woken to tell lock.waiting_long

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__name__}",
            {
                "lock": self.lock,
                "holder": self.holder,
                "deadline": self.deadline,
                "poll_seconds": self.poll_seconds,
                "max_poll_seconds": self.max_poll_seconds,
                "task_id": self.task_id,
                "notice_at": self.notice_at,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        holder = Holder(**self.holder)
        # one attempt per poll: the trigger's own loop retries until the deadline
        client = LockClient(TaskIdentity(holder.dag_id, holder.run_id, str(self.task_id)), retries=0)
        wait, error, held_by = self.poll_seconds, "", None
        while True:
            asked = time.monotonic()
            until = min(self.deadline, self.notice_at) if self.notice_at is not None else self.deadline
            patience = max(0.0, min(WAIT_PER_CALL, until - time.time()))
            try:
                answer = await client.acquire_async(self.lock, patience)
            except ServiceNowError as exc:
                error = str(exc)
                self.log.warning("lock %s: service not answering, trying again: %s", self.lock, exc)
            else:
                error = ""
                if answer["granted"]:
                    yield TriggerEvent(LockGranted(status="granted", answer=answer))
                    return
                if answer["holder"] != held_by:
                    held_by = answer["holder"]
                    self.log.info("lock %s held by %s", self.lock, describe(held_by))
            if time.time() >= self.deadline:
                yield TriggerEvent(LockTimedOut(status="timeout", holder=held_by, error=error))
                return
            if self.notice_at is not None and time.time() >= self.notice_at:
                yield TriggerEvent(LockWaitingLong(status="waiting_long", holder=held_by, deadline=self.deadline))
                return
            if time.monotonic() - asked >= patience / 2 and not error:
                continue  # the service waited for us: ask again at once
            await asyncio.sleep(max(0.0, min(wait, until - time.time())))
            wait = min(wait * 1.5, self.max_poll_seconds)
