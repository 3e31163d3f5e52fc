"""Step fences: while a deploy, validate or rollback step may still be changing a target, its task holds a fence.

A fence is a lease on (DAG, environment, component) held by one task of one run: the task renews it while its
step runs and ends it once the step's processes are known to be gone. A task killed without a word (SIGKILL,
a dead machine) cannot end it: the lease lapses, and the lease is longer than the guard of a step needs to
stop its processes (steps/guard.py). So:

- another task about to act on the same target (the run's own rollback, the next run's deploy) waits while a
  fence of another task is live;
- an environment lock whose holder's run has ended stays held while that run still holds a live fence there
  (locks.py), so "mark the run failed" never lets the next run deploy beside a step still running.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Float, Integer, String, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

LIVE, ENDED = "live", "ended"
#: the longest lease a task may ask for (a renewing task asks again well before it lapses)
MAX_LEASE_SECONDS = 300.0


class _Base(DeclarativeBase):
    pass


class StepFence(_Base):
    __tablename__ = "release_mgmt_step_fence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(String(250), index=True)
    run_id: Mapped[str] = mapped_column(String(250))
    environment: Mapped[str] = mapped_column(String(100))
    component: Mapped[str] = mapped_column(String(100))
    task_id: Mapped[str] = mapped_column(String(250))
    state: Mapped[str] = mapped_column(String(10), default=LIVE, index=True)
    lease_until: Mapped[float] = mapped_column(Float)
    started_on: Mapped[str] = mapped_column(String(40))
    ended_on: Mapped[str] = mapped_column(String(40), default="")
    ended_why: Mapped[str] = mapped_column(String(300), default="")

    def view(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "environment": self.environment,
            "component": self.component,
            "task_id": self.task_id,
            "state": self.state,
            "lease_until": datetime.fromtimestamp(self.lease_until, UTC).isoformat(timespec="seconds"),
            "started_on": self.started_on,
            "ended_on": self.ended_on,
            "ended_why": self.ended_why,
        }


@dataclass(frozen=True)
class Fenced:
    """Who holds a fence: one task of one run, acting on one component in one environment."""

    dag_id: str
    run_id: str
    environment: str
    component: str
    task_id: str

    def owns(self, fence: StepFence) -> bool:
        return (fence.dag_id, fence.run_id, fence.environment, fence.component, fence.task_id) == (
            self.dag_id,
            self.run_id,
            self.environment,
            self.component,
            self.task_id,
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class FenceStore:
    """Fences in the database of ``engine`` (table made when missing)."""

    def __init__(self, engine: Engine, clock: Any = time.time) -> None:
        self.engine = engine
        self.clock = clock
        _Base.metadata.create_all(engine)

    def hold(self, who: Fenced, seconds: float) -> dict[str, Any]:
        """Start or renew ``who``'s fence for ``seconds`` (capped at MAX_LEASE_SECONDS)."""
        until = self.clock() + max(1.0, min(float(seconds), MAX_LEASE_SECONDS))
        with Session(self.engine) as session, session.begin():
            mine = next((f for f in self._live(session, who.dag_id, who.environment) if who.owns(f)), None)
            if mine is None:
                mine = StepFence(
                    dag_id=who.dag_id,
                    run_id=who.run_id,
                    environment=who.environment,
                    component=who.component,
                    task_id=who.task_id,
                    started_on=_now(),
                    lease_until=until,
                )
                session.add(mine)
            mine.lease_until = until
            session.flush()
            return mine.view()

    def end(self, who: Fenced, why: str) -> dict[str, Any] | None:
        """End ``who``'s fence (its step is known to be over); None when it had none live."""
        with Session(self.engine) as session, session.begin():
            mine = next((f for f in self._live(session, who.dag_id, who.environment) if who.owns(f)), None)
            if mine is None:
                return None
            mine.state, mine.ended_on, mine.ended_why = ENDED, _now(), why[:300]
            return mine.view()

    def live(
        self, dag_id: str, environment: str, *, component: str | None = None, run_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Live fences on a DAG's environment (one component's, one run's, when given); lapsed leases end here."""
        with Session(self.engine) as session, session.begin():
            return [
                f.view()
                for f in self._live(session, dag_id, environment)
                if (component is None or f.component == component) and (run_id is None or f.run_id == run_id)
            ]

    def busy_in(self, session: Session, dag_id: str, run_id: str, environment: str) -> bool:
        """Whether the run holds a live fence in the environment (read in the caller's transaction)."""
        stmt = select(StepFence.id).where(
            StepFence.dag_id == dag_id,
            StepFence.run_id == run_id,
            StepFence.environment == environment,
            StepFence.state == LIVE,
            StepFence.lease_until > self.clock(),
        )
        return session.scalars(stmt.limit(1)).first() is not None

    def _live(self, session: Session, dag_id: str, environment: str) -> list[StepFence]:
        stmt = select(StepFence).where(
            StepFence.dag_id == dag_id, StepFence.environment == environment, StepFence.state == LIVE
        )
        live = []
        now = self.clock()
        for fence in session.scalars(stmt.order_by(StepFence.id)):
            if fence.lease_until > now:
                live.append(fence)
            else:
                fence.state, fence.ended_on = ENDED, _now()
                fence.ended_why = "lease lapsed: the task stopped renewing it (killed); its step's guard had stopped it"
        return live
