"""Approval gate progress that survives the gate task's retries: the deadline, the counted votes and the refused
ones, per gate task of a run.

Airflow 3.3 can fail a gate answered within seconds of parking (the executor's late report of the parking meets
the task already queued again) and clears a task's XComs when it is tried again. The gate keeps its progress
here too; a retried gate reads it back, together with the answers the earlier tries' requests received
(``answers``, read from Airflow's database by the API server), so no answer is lost and the deadline holds.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import String, Text, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

#: what a progress record may hold (anything else in a request is refused)
FIELDS = ("deadline", "votes", "refused", "decided")


class _Base(DeclarativeBase):
    pass


class GateProgress(_Base):
    __tablename__ = "release_mgmt_gate_progress"

    dag_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    progress: Mapped[str] = mapped_column(Text)


class GateStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        _Base.metadata.create_all(engine)

    def load(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any] | None:
        with Session(self.engine) as session:
            stmt = select(GateProgress.progress).where(
                GateProgress.dag_id == dag_id, GateProgress.run_id == run_id, GateProgress.task_id == task_id
            )
            text = session.scalar(stmt)
        return json.loads(text) if text else None

    def save(self, dag_id: str, run_id: str, task_id: str, progress: dict[str, Any]) -> dict[str, Any]:
        kept = {k: progress[k] for k in FIELDS if k in progress}
        with Session(self.engine) as session, session.begin():
            row = session.get(GateProgress, (dag_id, run_id, task_id))
            if row is None:
                session.add(GateProgress(dag_id=dag_id, run_id=run_id, task_id=task_id, progress=json.dumps(kept)))
            else:
                row.progress = json.dumps(kept)
        return kept


def check_progress(body: Any) -> str:
    """Why a progress body is unfit ('' when fine): a deadline text and two lists of vote records."""
    if not isinstance(body, dict) or set(body) - set(FIELDS):
        return f"the body must be a JSON object with only {', '.join(FIELDS)}"
    if not isinstance(body.get("deadline", ""), str):
        return "deadline must be an ISO 8601 text"
    if body.get("decided", "") not in ("", "approved", "rejected"):
        return "decided must be approved, rejected or empty"
    for key in ("votes", "refused"):
        value = body.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value) or len(value) > 1000:
            return f"{key} must be a list of vote records"
    return _size_problem(json.dumps(body, ensure_ascii=False))


def _size_problem(text: str) -> str:
    if len(text) > 200_000:
        return "the progress is too large"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "the progress holds a character that is not valid Unicode (a lone surrogate)"
    return ""
