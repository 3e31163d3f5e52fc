"""What the console reads, and nothing else: the release definitions (the folder the DAG file reads), Airflow's
metadata database (runs, task states, deployment records, next scheduled runs) and the change service's
database (changes, approval records, locks). Reads only: every decision goes through the change service.

The API server reads Airflow's database as Airflow's own UI does; this module is the only place the console
touches it, so a page costs a few indexed queries, never a walk over task logs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from release_mgmt.change_service.locks import LockStore
from release_mgmt.change_service.store import ChangeStore
from release_mgmt.definition.loader import LoadReport, definition_files, load_paths
from release_mgmt.reports import status


@dataclass(frozen=True)
class RunRow:
    """One DAG run as the console shows it."""

    dag_id: str
    run_id: str
    state: str
    triggered_by: str
    run_after: datetime | None
    start: datetime | None
    end: datetime | None
    conf: dict[str, Any]


def releases_dir() -> Path:
    """The definitions folder the DAG file reads: ``$RELEASE_MGMT_RELEASES_DIR``, else ``include/releases`` next to
    Airflow's DAGs folder (the repository layout)."""
    if folder := os.environ.get("RELEASE_MGMT_RELEASES_DIR"):
        return Path(folder)
    return repository() / "include" / "releases"


def repository() -> Path:
    """Where the DAGs folder lives (the repository layout): definitions are named relative to it."""
    from airflow.configuration import conf

    return Path(conf.get("core", "dags_folder")).resolve().parent


class Sources:
    """The console's reads. ``folder`` gives the definitions folder; ``store`` opens the change database;
    ``display_root`` is what files are named relative to (default: the folder's parent)."""

    def __init__(
        self,
        folder: Callable[[], Path],
        store: Callable[[], ChangeStore],
        display_root: Callable[[], Path] | None = None,
    ) -> None:
        self._folder = folder
        self._display_root = display_root
        self._open_store = store
        self._store: ChangeStore | None = None
        self._locks: LockStore | None = None
        self._cache: tuple[tuple[Any, ...], LoadReport] | None = None
        self._guard = threading.Lock()

    # -- definitions -------------------------------------------------------------------------------------
    def definitions(self) -> LoadReport:
        """Every definition of the folder, valid and broken; read again only when a file changed."""
        folder = self._folder()
        files = definition_files([folder]) if folder.is_dir() else []
        signature = tuple((str(f), *_stamp(f)) for f in files) + tuple(_stamp(c) for c in _calendars(folder))
        with self._guard:
            if self._cache is None or self._cache[0] != signature:
                root = self._display_root() if self._display_root else folder.parent  # as the DAG file names them
                self._cache = (signature, load_paths([folder], root=root) if files else LoadReport((), ()))
            return self._cache[1]

    # -- change service ------------------------------------------------------------------------------------
    @property
    def store(self) -> ChangeStore:
        with self._guard:
            if self._store is None:
                self._store = self._open_store()
            return self._store

    def changes(self, limit: int = 500) -> list[dict[str, str]]:
        """The newest changes first."""
        return self.store.query([], limit, "sys_created_on", True)

    def change(self, sys_id: str) -> dict[str, str] | None:
        return self.store.get(sys_id) if sys_id.isalnum() and len(sys_id) <= 32 else None

    def approvals(self, sys_id: str) -> list[dict[str, str]]:
        return self.store.approvals(change_sys_id=sys_id)

    def pending_approvals(self, approver: str) -> set[str]:
        """The changes (sys_id) where ``approver`` holds an approval record still requested."""
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from release_mgmt.change_service.approvals import REQUESTED
        from release_mgmt.change_service.records import Approval

        stmt = select(Approval.sysapproval).where(Approval.approver == approver, Approval.state == REQUESTED)
        with Session(self.store.engine) as session:
            return set(session.scalars(stmt))

    def locks(self) -> dict[str, dict[str, Any]]:
        """Lock name -> holder and queue."""
        if self._locks is None:
            self._locks = LockStore(self.store.engine)
        return {s["lock"]: s for s in self._locks.status()}

    # -- Airflow's metadata database -------------------------------------------------------------------------
    def deployments(self) -> list[status.Running]:
        """The latest recorded deployment per release, environment and component."""
        return status.running()

    def runs(self, dag_ids: Iterable[str], *, limit: int = 10, active_only: bool = False) -> list[RunRow]:
        """The newest ``limit`` runs of each DAG (or only its queued and running ones)."""
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import func, select

        ids = sorted(set(dag_ids))
        if not ids:
            return []
        rank = func.row_number().over(partition_by=DagRun.dag_id, order_by=DagRun.run_after.desc()).label("rank")
        inner = select(DagRun.id, rank).where(DagRun.dag_id.in_(ids))
        if active_only:
            inner = inner.where(DagRun.state.in_(("queued", "running")))
        newest = inner.subquery()
        stmt = select(DagRun).join(newest, DagRun.id == newest.c.id).where(newest.c.rank <= limit)
        with create_session() as session:
            return [_row(r) for r in session.scalars(stmt.order_by(DagRun.run_after.desc()))]

    def runs_between(self, dag_ids: Iterable[str], start: datetime, end: datetime, limit: int = 2000) -> list[RunRow]:
        """Runs of these DAGs that started (or were due) in [start, end)."""
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        ids = sorted(set(dag_ids))
        stmt = (
            select(DagRun)
            .where(DagRun.dag_id.in_(ids), DagRun.run_after >= start, DagRun.run_after < end)
            .order_by(DagRun.run_after)
            .limit(limit)
        )
        with create_session() as session:
            return [_row(r) for r in session.scalars(stmt)] if ids else []

    def run(self, dag_id: str, run_id: str) -> RunRow | None:
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            found = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
            return _row(found) if found is not None else None

    def run_states(self, runs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """(dag id, run id) -> state, for the runs that recorded the deployments shown."""
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import select, tuple_

        wanted = sorted(set(runs))
        found: dict[tuple[str, str], str] = {}
        with create_session() as session:
            for start in range(0, len(wanted), 200):
                chunk = wanted[start : start + 200]
                stmt = select(DagRun.dag_id, DagRun.run_id, DagRun.state).where(
                    tuple_(DagRun.dag_id, DagRun.run_id).in_(chunk)
                )
                found.update({(d, r): _text(s) for d, r, s in session.execute(stmt)})
        return found

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """Task id -> state ('' when none yet) of one run."""
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select

        stmt = select(TaskInstance.task_id, TaskInstance.state).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.map_index == -1
        )
        with create_session() as session:
            return {task: _text(state) for task, state in session.execute(stmt)}

    def next_runs(self, dag_ids: Iterable[str]) -> dict[str, datetime]:
        """DAG id -> when the scheduler creates its next scheduled run (maintenance-window timetable)."""
        from airflow.models.dag import DagModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        ids = sorted(set(dag_ids))
        stmt = select(DagModel.dag_id, DagModel.next_dagrun_create_after).where(
            DagModel.dag_id.in_(ids), DagModel.next_dagrun_create_after.is_not(None), DagModel.is_paused.is_(False)
        )
        with create_session() as session:
            return {str(dag): when for dag, when in session.execute(stmt) if when is not None} if ids else {}


def _stamp(path: Path) -> tuple[int, int]:
    try:
        info = path.stat()
    except OSError:
        return (0, 0)
    return (info.st_mtime_ns, info.st_size)


def _calendars(folder: Path) -> list[Path]:
    """Files definitions may read besides their own: shared calendars, approver groups next to the folder."""
    shared = folder.parent / "calendars"
    return sorted([*folder.parent.glob("*.y*ml"), *(shared.glob("*.y*ml") if shared.is_dir() else [])])


def _text(value: Any) -> str:
    return "" if value is None else str(getattr(value, "value", value))


def _row(run: Any) -> RunRow:
    return RunRow(
        run.dag_id,
        run.run_id,
        _text(run.state),
        str(run.triggering_user_name or ""),
        run.run_after,
        run.start_date,
        run.end_date,
        dict(run.conf or {}),
    )
