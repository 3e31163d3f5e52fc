"""A step task's fence (change_service/fences.py): before acting on a target, wait while a step of another task
may still be changing it; while acting, hold a lease renewed from a thread, so the environment's lock stays held
and the next task waits even if this one is marked failed or killed; end it once the step's processes are gone.

The fence is a second line: the step's guard (steps/guard.py) already stops a step whose task dies. When the
built-in service cannot be reached, the task says so in its log and goes on (during such an outage no other run
can take the environment's lock either); a renewal that fails is tried again at the next beat.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from release_mgmt.change_service.service_token import TaskIdentity

#: seconds between renewals; the lease is this task's longest stop grace plus LEASE_MARGIN
RENEW_SECONDS = 10.0
LEASE_MARGIN = 20.0
#: how long a task waits for another task's step on the same target before it gives up
WAIT_SECONDS = 900.0
POLL_SECONDS = 2.0


def lease_for(steps: Iterable[Any]) -> float:
    """A lease longer than any renewal gap plus the time the step's guard may need to stop it."""
    grace = max((float(getattr(s, "stop_grace_seconds", 10)) for s in steps), default=10.0)
    return max(RENEW_SECONDS * 3, grace + LEASE_MARGIN)


class StepFence:
    """``with StepFence(...)`` around a task's steps, after :meth:`wait_for_others`."""

    def __init__(self, context: Context, component: str, log: Any, lease: float, wait_seconds: float = WAIT_SECONDS):
        from release_mgmt.hooks.locks import FenceClient

        self.client = FenceClient(TaskIdentity.from_context(context))
        self.component = component
        self.log = log
        self.lease = lease
        self.wait_seconds = wait_seconds
        self.why_ended = "step over"
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def wait_for_others(self, sleep: Any = time.sleep) -> None:
        """Return once no other task's step may be changing this component here; fail after ``wait_seconds``."""
        deadline = time.monotonic() + self.wait_seconds
        seen: list[str] = []
        while True:
            try:
                others = self.client.others(self.component)
            except Exception as exc:  # noqa: BLE001 - unreachable service: the guard still stops dead steps
                self.log.warning("step fence: could not ask the built-in service (%s); going on without waiting", exc)
                return
            if not others:
                if seen:
                    self.log.info("step fence: the other step on %s is over", self.component)
                return
            now = [f"{f['task_id']} of run {f['run_id']} (lease until {f['lease_until']})" for f in others]
            if now != seen:
                self.log.warning("step fence: waiting: %s may still be changing %s", "; ".join(now), self.component)
                seen = now
            if time.monotonic() >= deadline:
                raise AirflowFailException(
                    f"{self.component}: {'; '.join(now)} still holds the step fence after {self.wait_seconds:.0f}s; "
                    "its task is alive and renewing it. Let it finish, or mark that task failed (its step is then "
                    "stopped and the fence ends), then clear this task."
                )
            sleep(POLL_SECONDS)

    def __enter__(self) -> StepFence:
        self._hold()
        self._renewer = threading.Thread(target=self._renew, name="release-mgmt-fence", daemon=True)
        self._renewer.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=10)
        try:
            self.client.end(self.component, self.why_ended if exc is None else f"step ended: {type(exc).__name__}")
        except Exception as error:  # noqa: BLE001 - the lease lapses on its own
            self.log.warning("step fence: could not end it (%s); it lapses within %.0fs", error, self.lease)

    def _hold(self) -> bool:
        try:
            self.client.hold(self.component, self.lease)
        except Exception as exc:  # noqa: BLE001 - tried again at the next beat
            self.log.warning("step fence: could not hold it (%s); trying again in %.0fs", exc, RENEW_SECONDS)
            return False
        return True

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_SECONDS):
            self._hold()
