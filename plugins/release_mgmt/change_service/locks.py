"""Environment locks in the service's database: one holder per lock at a time, waiters served in order.

A lock is a name (``<release>/<environment>`` by default, or a name several releases declare). A
holder is one run in one environment. ``acquire`` queues the holder and grants the lock to the
oldest request once no live holder remains; it is idempotent, so a retried or re-polled call never
queues twice. A holder whose Airflow run is no longer queued or running (failed, marked, deleted)
is released for it, so a killed run never blocks an environment -- once none of that run's steps may still be
running there (a live step fence, fences.py, keeps the lock held until the step is known stopped). Every
acquire and release of a lock first bumps the lock's row: that write serializes them on PostgreSQL (row lock)
and SQLite (write lock) alike, so two callers never both see the lock free.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, String, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from release_mgmt.change_service.contract import LOCKS, Holder
from release_mgmt.change_service.fences import FenceStore

#: where the service answers lock calls (under its mount point, /change-service inside Airflow)
API_PATH = LOCKS
WAITING, HELD, RELEASED = "waiting", "held", "released"
LIVE_RUN_STATES = frozenset({"queued", "running"})

#: (dag_id, run_id) -> the run's state in Airflow, or None when there is no such run
RunState = Callable[[str, str], str | None]


class _Base(DeclarativeBase):
    pass


class EnvironmentLock(_Base):
    """A lock's row: bumped by every acquire and release of the lock, to serialize them."""

    __tablename__ = "release_mgmt_lock"

    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class LockRequest(_Base):
    """One holder's request for a lock: waiting, then held, then released (with why)."""

    __tablename__ = "release_mgmt_lock_request"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # the queue order
    lock: Mapped[str] = mapped_column(String(120), index=True)
    dag_id: Mapped[str] = mapped_column(String(250))
    run_id: Mapped[str] = mapped_column(String(250))
    environment: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(10), default=WAITING, index=True)
    requested_on: Mapped[str] = mapped_column(String(40))
    granted_on: Mapped[str] = mapped_column(String(40), default="")
    released_on: Mapped[str] = mapped_column(String(40), default="")
    released_why: Mapped[str] = mapped_column(String(300), default="")

    def view(self) -> dict[str, Any]:
        return {
            "lock": self.lock,
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "environment": self.environment,
            "state": self.state,
            "requested_on": self.requested_on,
            "granted_on": self.granted_on,
            "released_on": self.released_on,
            "released_why": self.released_why,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def any_run_is_live(dag_id: str, run_id: str) -> str | None:
    """The run-state source of a service that cannot see Airflow's database: every holder counts as live."""
    return "running"


class LockStore:
    """Locks in the database of ``engine`` (tables made when missing). ``run_state`` tells whether a
    holder's run still runs; a standalone service without Airflow's database treats all as live."""

    def __init__(self, engine: Engine, run_state: RunState = any_run_is_live, fences: FenceStore | None = None) -> None:
        self.engine = engine
        self.run_state = run_state
        self.fences = fences or FenceStore(engine)
        #: bumped whenever a lock may have become free in this process: waiting callers look at it (lock_api.py)
        self.generation = 0
        _Base.metadata.create_all(engine)

    def acquire(self, lock: str, holder: Holder) -> dict[str, Any]:
        """Queue ``holder`` (once) and grant it the lock when it is first in line and no live holder remains.

        Returns ``granted``, the ``holder`` request now holding the lock (None when free) and the
        ``queue`` of waiting requests, oldest first.
        """
        with Session(self.engine) as session, session.begin():
            self._serialize(session, lock)
            # one moment, taken once this caller's turn has come: a lock granted at once shows no wait, and a
            # grant is never stamped before the release it follows
            now = _now()
            active = self._active(session, lock)
            mine = next((r for r in active if holder.owns(r)), None)
            if mine is None:
                mine = LockRequest(
                    lock=lock,
                    dag_id=holder.dag_id,
                    run_id=holder.run_id,
                    environment=holder.environment,
                    requested_on=now,
                )
                session.add(mine)
                session.flush()
                active.append(mine)
            held = next((r for r in active if r.state == HELD), None)
            waiting = [r for r in active if r.state == WAITING]
            if held is None and waiting and waiting[0] is mine:
                mine.state, mine.granted_on = HELD, now
                held = mine
                waiting.pop(0)
            return {
                "granted": held is mine,
                "holder": held.view() if held else None,
                "queue": [r.view() for r in waiting],
            }

    def release(self, lock: str, holder: Holder, why: str = "released") -> dict[str, Any] | None:
        """End ``holder``'s request (held or still waiting); None when it had none. A held lock is not given
        back while a step of the holder's run holds a live fence in the environment: the answer then says
        ``fenced`` and the lock stays held (ask again once the step is known stopped)."""
        with Session(self.engine) as session, session.begin():
            self._serialize(session, lock)
            mine = next((r for r in self._active(session, lock, check=False) if holder.owns(r)), None)
            if mine is None:
                return None
            was = mine.state
            if was == HELD and self.fences.busy_in(session, holder.dag_id, holder.run_id, holder.environment):
                return {**mine.view(), "was": was, "fenced": True}  # a step of the run may still be running
            self._end(mine, why if was == HELD else f"withdrawn while waiting: {why}")
            answer = {**mine.view(), "was": was}
        self.changed()
        return answer

    def changed(self) -> None:
        """A lock may be free now (a release, a fence ended): callers waiting in this process ask again."""
        self.generation += 1

    def status(self, lock: str | None = None) -> list[dict[str, Any]]:
        """Every lock (or one) with its holder and queue, stale holders released first."""
        with Session(self.engine) as session, session.begin():
            known = select(EnvironmentLock.name).order_by(EnvironmentLock.name)
            if lock is not None:  # reading a name never taken creates nothing
                known = known.where(EnvironmentLock.name == lock)
            names = list(session.scalars(known))
            if lock is not None and not names:
                return [{"lock": lock, "holder": None, "queue": []}]
            result = []
            for name in names:
                self._serialize(session, name)
                active = self._active(session, name)
                held = next((r for r in active if r.state == HELD), None)
                result.append(
                    {
                        "lock": name,
                        "holder": held.view() if held else None,
                        "queue": [r.view() for r in active if r.state == WAITING],
                    }
                )
            return result

    def history(self, lock: str, limit: int = 50) -> list[dict[str, Any]]:
        """The lock's requests, newest first (for auditors: who held it, from when to when, and why it ended)."""
        with Session(self.engine) as session:
            stmt = select(LockRequest).where(LockRequest.lock == lock).order_by(LockRequest.id.desc()).limit(limit)
            return [r.view() for r in session.scalars(stmt)]

    # -- inside one transaction ---------------------------------------------------------------------------

    def _serialize(self, session: Session, lock: str) -> None:
        """Write the lock's row first: later callers for this lock wait until this transaction ends."""
        dialect = session.get_bind().dialect.name
        if dialect in ("sqlite", "postgresql"):
            insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
            session.execute(insert(EnvironmentLock).values(name=lock, version=0).on_conflict_do_nothing())
        elif session.get(EnvironmentLock, lock) is None:
            try:
                with session.begin_nested():
                    session.add(EnvironmentLock(name=lock, version=0))
            except IntegrityError:  # made by a concurrent first caller
                pass
        session.execute(
            update(EnvironmentLock).where(EnvironmentLock.name == lock).values(version=EnvironmentLock.version + 1)
        )

    def _active(self, session: Session, lock: str, check: bool = True) -> list[LockRequest]:
        """The lock's waiting and held requests in queue order; with ``check``, those of finished runs released."""
        stmt = (
            select(LockRequest)
            .where(LockRequest.lock == lock, LockRequest.state.in_((WAITING, HELD)))
            .order_by(LockRequest.id)
        )
        active = list(session.scalars(stmt))
        if not check:
            return active
        live = []
        for request in active:
            state = self.run_state(request.dag_id, request.run_id)
            if state in LIVE_RUN_STATES:
                live.append(request)
            elif request.state == HELD and self.fences.busy_in(
                session, request.dag_id, request.run_id, request.environment
            ):
                live.append(request)  # the run ended, but a step of it may still be changing the environment
            else:
                self._end(request, f"run {request.run_id} is {state or 'gone'}")
        return live

    @staticmethod
    def _end(request: LockRequest, why: str) -> None:
        request.state, request.released_on, request.released_why = RELEASED, _now(), why[:300]
