"""Environment locks: a run deploys into an environment only while it holds the environment's lock.

The ``lock`` task takes it after the environment's gates and change authorization, before the
first deploy; the ``unlock`` task gives it back once every deploy, check and rollback there is
done. A run that finds the lock taken queues in the built-in service and waits on the triggerer
(no worker slot held) until it is first in line and the lock is free. The lock lives in the
service's database (``change_service/locks.py``), so any worker, triggerer or API server sees it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from release_mgmt.change_service.contract import Holder, describe
from release_mgmt.change_service.service_token import TaskIdentity
from release_mgmt.errors import ServiceNowError
from release_mgmt.operators.base import ReleaseOperator
from release_mgmt.triggers.events import LockEvent

if TYPE_CHECKING:  # the HTTP client stack is imported when a task runs, never when the DAG file is parsed
    from release_mgmt.hooks.locks import LockClient

#: how much longer than its own deadline Airflow lets the trigger run before failing the task itself
TRIGGER_GRACE = timedelta(minutes=10)


def lock_client(context: Context) -> LockClient:
    """The lock client, calling as this task: the service takes the holder from its token."""
    from release_mgmt.hooks.locks import LockClient

    return LockClient(identity=TaskIdentity.from_context(context))


def _seconds_between(start: str, end: str) -> float:
    try:
        return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)
    except ValueError:
        return 0.0


class _LockOperator(ReleaseOperator):
    ui_color = "#fff3cd"

    def __init__(self, *, environment: str, lock: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.environment = environment
        self.lock = lock

    def _holder(self, context: Context) -> Holder:
        """The holder this task acts as: its run, in its environment."""
        return Holder(context["ti"].dag_id, context["run_id"], self.environment)

    @staticmethod
    def _client(context: Context) -> LockClient:
        return lock_client(context)

    def _lock_audit(self, context: Context, event: str, outcome: str, **details: Any) -> None:
        self._audit(context, event, outcome, environment=self.environment, details={"lock": self.lock, **details})


class EnvironmentLockOperator(_LockOperator):
    """Takes the environment's lock, waiting in line without a worker; fails after ``timeout_seconds``."""

    def __init__(
        self, *, timeout_seconds: float, poll_seconds: float = 2.0, notice_seconds: float = 1800.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.timeout_seconds = timeout_seconds
        self.poll_seconds = poll_seconds
        self.notice_seconds = notice_seconds

    def execute(self, context: Context) -> dict[str, Any]:
        if context["params"].get("dry_run"):
            self.log.info("DRY RUN: would take lock %s before deploying to %s", self.lock, self.environment)
            self._lock_audit(context, "lock.dry_run", "skipped")
            return {"lock": self.lock, "dry_run": True}
        holder = self._holder(context)
        answer = self._call(lambda: self._client(context).acquire(self.lock))
        if not answer["granted"]:
            self._wait(context, holder, answer)
        return self._granted(context, answer)

    def _wait(self, context: Context, holder: Holder, answer: Mapping[str, Any]) -> NoReturn:
        position = 1 + next(
            (i for i, r in enumerate(answer["queue"]) if Holder(r["dag_id"], r["run_id"], r["environment"]) == holder),
            len(answer["queue"]),
        )
        self.log.info(
            "lock %s is held by %s; waiting in line (position %d) on the triggerer, no worker held",
            self.lock,
            describe(answer["holder"]),
            position,
        )
        self._lock_audit(context, "lock.waiting", "waiting", held_by=answer["holder"], position=position)
        now = time.time()
        notice = now + self.notice_seconds if 0 < self.notice_seconds < self.timeout_seconds else None
        self._defer_in_line(holder, now + self.timeout_seconds, notice)

    def _defer_in_line(self, holder: Holder, deadline: float, notice_at: float | None) -> NoReturn:
        from release_mgmt.triggers.lock import EnvironmentLockTrigger

        self.defer(
            trigger=EnvironmentLockTrigger(
                self.lock,
                {"dag_id": holder.dag_id, "run_id": holder.run_id, "environment": holder.environment},
                deadline=deadline,
                poll_seconds=self.poll_seconds,
                task_id=self.task_id,
                notice_at=notice_at,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=max(0.0, deadline - time.time())) + TRIGGER_GRACE,
        )

    def execute_complete(self, context: Context, event: LockEvent) -> dict[str, Any]:
        if event["status"] == "granted":
            return self._granted(context, event["answer"])
        if event["status"] == "waiting_long":  # told once; then back in line until the deadline
            minutes = round(self.notice_seconds / 60, 1)
            self._lock_audit(context, "lock.waiting_long", "waiting", held_by=event["holder"], waited_minutes=minutes)
            self._defer_in_line(self._holder(context), event["deadline"], None)
        try:  # leave the queue, so the runs behind this one are not held up by it
            self._client(context).release(self.lock, f"gave up waiting: {event['status']}")
        except ServiceNowError as exc:
            self.log.warning("could not leave the queue of lock %s (it is left when the run ends): %s", self.lock, exc)
        held_by, error = event["holder"], event["error"]
        self._lock_audit(context, "lock.timeout", "failed", held_by=held_by, error=error)
        raise AirflowFailException(
            f"{self.environment}: lock {self.lock} not granted within {self.timeout_seconds:.0f}s; held by "
            f"{describe(held_by)}{'; last error: ' + error if error else ''}. Wait for that "
            f"run to finish (or fail it, which frees the lock), then clear this task; lock_timeout sets the wait."
        )

    def _granted(self, context: Context, answer: Mapping[str, Any]) -> dict[str, Any]:
        held = answer["holder"]
        waited = _seconds_between(held["requested_on"], held["granted_on"])
        self.log.info("took lock %s for %s (waited %.1fs)", self.lock, self.environment, waited)
        self._lock_audit(context, "lock.acquired", "ok", waited_seconds=waited, granted_on=held["granted_on"])
        return {"lock": self.lock, "granted_on": held["granted_on"], "waited_seconds": waited}

    def _call(self, call: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = call()
        except ServiceNowError as exc:
            raise AirflowFailException(
                f"{self.environment}: could not reach the lock service: {exc}. Check that the API server is up "
                "and that tasks reach it (RELEASE_MGMT_CHANGE_SERVICE_URL or [api] base_url)"
            ) from exc
        return result


#: how long unlock waits for a step of its run that may still be running (a fence lease lapses within 140 s)
FENCE_WAIT_SECONDS = 150.0


class EnvironmentUnlockOperator(_LockOperator):
    """Gives the lock back once everything in the environment is done (also after failures and rollbacks).

    A lock it cannot give back is logged, not failed: the service frees it when this run ends.
    """

    def _release(self, context: Context) -> dict[str, Any] | None:
        """Give the lock back; while a step of this run may still be running here (a task marked failed whose
        step is being stopped), the service keeps it: ask again until the step is known stopped."""
        client = self._client(context)
        deadline = time.monotonic() + FENCE_WAIT_SECONDS
        while True:
            released = client.release(self.lock, f"{self.environment} done")
            if not (released and released.get("fenced")) or time.monotonic() >= deadline:
                return released
            self.log.info(
                "lock %s: a step of this run may still be running here; waiting before giving it back", self.lock
            )
            time.sleep(2)

    def execute(self, context: Context) -> dict[str, Any]:
        if context["params"].get("dry_run"):
            raise AirflowSkipException("dry run: no lock was taken")
        try:
            released = self._release(context)
        except ServiceNowError as exc:
            self.log.warning("could not give back lock %s; it is freed when this run ends: %s", self.lock, exc)
            self._lock_audit(context, "lock.release_failed", "failed", error=str(exc))
            return {"lock": self.lock, "released": False}
        if released is None:
            raise AirflowSkipException(f"no lock {self.lock} was held or asked for by this run in {self.environment}")
        if released.get("fenced"):
            self.log.warning(
                "lock %s kept: a step of this run may still be running; it is freed when it ends", self.lock
            )
            self._lock_audit(context, "lock.release_deferred", "fenced")
            return {"lock": self.lock, "released": False}
        held = _seconds_between(released["granted_on"], released["released_on"]) if released["granted_on"] else 0.0
        self.log.info("gave back lock %s (%s, held %.1fs)", self.lock, released["was"], held)
        self._lock_audit(context, "lock.released", "ok", was=released["was"], held_seconds=held)
        return {"lock": self.lock, "released": True, "held_seconds": held}
