"""Change requests in a database: the records, their journal (work notes) and the state model.

Values are the stored ServiceNow values (``state`` -5 New ... 3 Closed, 4 Canceled), never labels.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, create_engine, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from release_mgmt.errors import ReleaseMgmtError

NEW, ASSESS, AUTHORIZE, SCHEDULED, IMPLEMENT, REVIEW, CLOSED, CANCELED = -5, -4, -3, -2, -1, 0, 3, 4
STATES = {
    NEW: "New",
    ASSESS: "Assess",
    AUTHORIZE: "Authorize",
    SCHEDULED: "Scheduled",
    IMPLEMENT: "Implement",
    REVIEW: "Review",
    CLOSED: "Closed",
    CANCELED: "Canceled",
}
#: the state model per change type: where a change may go from each state (cancel is allowed until closed)
FLOWS = {
    "normal": {
        NEW: {ASSESS},
        ASSESS: {AUTHORIZE},
        AUTHORIZE: set(),
        SCHEDULED: {IMPLEMENT},
        IMPLEMENT: {REVIEW},
        REVIEW: {CLOSED},
    },
    "standard": {NEW: {SCHEDULED, IMPLEMENT}, SCHEDULED: {IMPLEMENT}, IMPLEMENT: {REVIEW}, REVIEW: {CLOSED}},
    "emergency": {NEW: {AUTHORIZE}, AUTHORIZE: set(), SCHEDULED: {IMPLEMENT}, IMPLEMENT: {REVIEW}, REVIEW: {CLOSED}},
}
CLOSE_CODES = ("successful", "successful_issues", "unsuccessful")
WRITABLE = (
    "short_description",
    "description",
    "type",
    "state",
    "correlation_id",
    "start_date",
    "end_date",
    "work_start",
    "work_end",
    "cmdb_ci",
    "assignment_group",
    "implementation_plan",
    "backout_plan",
    "test_plan",
    "close_code",
    "close_notes",
    "justification",
    "risk",
    "impact",
)


class Base(DeclarativeBase):
    pass


class ChangeRequest(Base):
    """One ``change_request`` record; every field a string as the Table API shows it."""

    __tablename__ = "change_request"

    sys_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    correlation_id: Mapped[str] = mapped_column(String(100), default="", index=True)
    type: Mapped[str] = mapped_column(String(20), default="normal")
    state: Mapped[int] = mapped_column(Integer, default=NEW)
    approval: Mapped[str] = mapped_column(String(20), default="not requested")
    short_description: Mapped[str] = mapped_column(String(160), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    start_date: Mapped[str] = mapped_column(String(40), default="")
    end_date: Mapped[str] = mapped_column(String(40), default="")
    work_start: Mapped[str] = mapped_column(String(40), default="")
    work_end: Mapped[str] = mapped_column(String(40), default="")
    cmdb_ci: Mapped[str] = mapped_column(String(100), default="")
    assignment_group: Mapped[str] = mapped_column(String(100), default="")
    implementation_plan: Mapped[str] = mapped_column(Text, default="")
    backout_plan: Mapped[str] = mapped_column(Text, default="")
    test_plan: Mapped[str] = mapped_column(Text, default="")
    justification: Mapped[str] = mapped_column(Text, default="")
    risk: Mapped[str] = mapped_column(String(20), default="")
    impact: Mapped[str] = mapped_column(String(20), default="")
    close_code: Mapped[str] = mapped_column(String(40), default="")
    close_notes: Mapped[str] = mapped_column(Text, default="")
    sys_created_by: Mapped[str] = mapped_column(String(100), default="")
    sys_created_on: Mapped[str] = mapped_column(String(40))
    sys_updated_on: Mapped[str] = mapped_column(String(40))


class JournalEntry(Base):
    """A work note on a change request."""

    __tablename__ = "sys_journal_field"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # the order notes were added
    sys_id: Mapped[str] = mapped_column(String(32), unique=True)
    element_id: Mapped[str] = mapped_column(ForeignKey("change_request.sys_id"), index=True)
    element: Mapped[str] = mapped_column(String(40), default="work_notes")
    value: Mapped[str] = mapped_column(Text)
    sys_created_by: Mapped[str] = mapped_column(String(100), default="")
    sys_created_on: Mapped[str] = mapped_column(String(40))


class ChangeRuleError(ReleaseMgmtError):
    """A write the change's state model or fields do not allow (the Table API answers 403 or 400)."""

    def __init__(self, message: str, detail: str = "", status: int = 403) -> None:
        self.status = status
        self.detail = detail
        super().__init__(message)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def as_record(change: ChangeRequest, work_notes: str = "") -> dict[str, str]:
    """The record as the Table API returns it: every value a string."""
    record = {c.name: str(getattr(change, c.name)) for c in ChangeRequest.__table__.columns}
    record["work_notes"] = work_notes
    return record


class ChangeStore:
    """Change requests in one database (``url``: any SQLAlchemy URL; tables made when missing)."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, future=True)
        Base.metadata.create_all(self.engine)

    def create(self, fields: Mapping[str, Any], user: str) -> dict[str, str]:
        for attempt in range(5):  # two writers may pick the same next number: the loser retries
            try:
                return self._create(fields, user)
            except IntegrityError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def _create(self, fields: Mapping[str, Any], user: str) -> dict[str, str]:
        values = _writable(fields)
        kind = values.get("type", "normal")
        if kind not in FLOWS:
            raise ChangeRuleError("Invalid type", f"type must be one of {', '.join(FLOWS)}, not {kind!r}", 400)
        values.pop("state", None)  # a new change starts New whatever was sent, as ServiceNow does
        with Session(self.engine) as session, session.begin():
            count = session.scalar(select(func.count()).select_from(ChangeRequest)) or 0
            change = ChangeRequest(
                sys_id=uuid.uuid4().hex,
                number=f"CHG{count + 1:07d}",
                sys_created_by=user,
                sys_created_on=_now(),
                sys_updated_on=_now(),
                **values,
            )
            if kind == "standard":  # pre-approved by definition
                change.approval = "approved"
            session.add(change)
            session.flush()
            notes = str(fields.get("work_notes") or "")
            if notes:
                session.add(_note(change.sys_id, notes, user))
            return as_record(change)

    def get(self, sys_id: str) -> dict[str, str] | None:
        with Session(self.engine) as session:
            change = session.get(ChangeRequest, sys_id)
            return as_record(change, self._notes(session, sys_id)) if change else None

    def query(
        self, filters: Mapping[str, str], limit: int, order_by: str = "sys_created_on", descending: bool = False
    ) -> list[dict[str, str]]:
        columns = ChangeRequest.__table__.columns
        stmt = select(ChangeRequest)
        for name, value in filters.items():
            if name not in columns:
                raise ChangeRuleError("Invalid query", f"unknown field {name!r} in sysparm_query", 400)
            stmt = stmt.where(columns[name] == (int(value) if name == "state" else value))
        order = columns[order_by] if order_by in columns else columns["sys_created_on"]
        stmt = stmt.order_by(order.desc() if descending else order, columns["number"]).limit(limit)
        with Session(self.engine) as session:
            return [as_record(c, self._notes(session, c.sys_id)) for c in session.scalars(stmt)]

    def update(self, sys_id: str, fields: Mapping[str, Any], user: str) -> dict[str, str] | None:
        with Session(self.engine) as session, session.begin():
            change = session.get(ChangeRequest, sys_id)
            if change is None:
                return None
            values = _writable(fields)
            if "state" in values:
                _check_transition(change, int(values["state"]), values)
                values["state"] = int(values["state"])
            for name, value in values.items():
                setattr(change, name, value)
            if values.get("state") == AUTHORIZE:
                change.approval = "requested"
            change.sys_updated_on = _now()
            notes = str(fields.get("work_notes") or "")
            if notes:
                session.add(_note(sys_id, notes, user))
            session.flush()
            return as_record(change, self._notes(session, sys_id))

    def decide(self, sys_id: str, approve: bool, user: str, comment: str) -> dict[str, str] | None:
        """An authorizer's decision on a change in Authorize: approved -> Scheduled, rejected -> Canceled."""
        with Session(self.engine) as session, session.begin():
            change = session.get(ChangeRequest, sys_id)
            if change is None:
                return None
            if change.state != AUTHORIZE:
                raise ChangeRuleError(
                    "Not awaiting authorization", f"{change.number} is {STATES[change.state]}, not Authorize", 409
                )
            change.approval = "approved" if approve else "rejected"
            change.state = SCHEDULED if approve else CANCELED
            change.sys_updated_on = _now()
            verb = "approved" if approve else "rejected"
            session.add(_note(sys_id, f"Change {verb} by {user}: {comment}".rstrip(": "), user))
            session.flush()
            return as_record(change, self._notes(session, sys_id))

    @staticmethod
    def _notes(session: Session, sys_id: str) -> str:
        """The work notes, newest first, as the journal shows them."""
        entries = session.scalars(
            select(JournalEntry).where(JournalEntry.element_id == sys_id).order_by(JournalEntry.id.desc())
        ).all()
        return "\n\n".join(f"{e.sys_created_on} - {e.sys_created_by} (Work notes)\n{e.value}" for e in entries)


def _note(sys_id: str, text: str, user: str) -> JournalEntry:
    return JournalEntry(
        sys_id=uuid.uuid4().hex, element_id=sys_id, value=text, sys_created_by=user, sys_created_on=_now()
    )


def _writable(fields: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(fields) - set(WRITABLE) - {"work_notes", "sys_id", "number"})
    if unknown:
        raise ChangeRuleError("Invalid fields", f"fields not writable or unknown: {', '.join(unknown)}", 400)
    values = {k: ("" if v is None else v) for k, v in fields.items() if k in WRITABLE}
    if values.get("close_code") and values["close_code"] not in CLOSE_CODES:
        raise ChangeRuleError("Invalid close_code", f"close_code must be one of {', '.join(CLOSE_CODES)}", 400)
    if "correlation_id" in values and len(str(values["correlation_id"])) > 100:
        raise ChangeRuleError("Invalid correlation_id", "correlation_id is at most 100 characters", 400)
    return {k: (v if k == "state" else str(v)) for k, v in values.items()}


def _check_transition(change: ChangeRequest, target: int, values: Mapping[str, Any]) -> None:
    """The state model: one step along the change type's flow, or cancel before closing."""
    if target not in STATES:
        raise ChangeRuleError("Invalid state", f"state {target} is not a change state", 400)
    current = change.state
    if target == current:
        return
    if target == CANCELED and current not in (CLOSED, CANCELED):
        return
    if target not in FLOWS[change.type].get(current, set()):
        raise ChangeRuleError(
            "Operation against file 'change_request' was aborted by Business Rule 'State model'",
            f"{change.number} ({change.type}) cannot move from {STATES[current]} to {STATES[target]}",
        )
    if target == CLOSED and not (values.get("close_code") or change.close_code):
        raise ChangeRuleError("Close code required", f"closing {change.number} needs close_code and close_notes")
