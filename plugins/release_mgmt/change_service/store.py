"""Change requests in a database: the records, their journal (work notes), the state model and the
authorization of each change by its approval records (``sysapproval_approver``).

Values are the stored ServiceNow values (``state`` -5 New ... 3 Closed, 4 Canceled), never labels.
Every value written is checked before it reaches the database: a wrong type, a label where a value
belongs, an over-long text or a NUL byte is a 400 in ServiceNow's error shape, never a 500.

Who may call what is the app's business (permissions.py); the rules here hold for every caller:
``type`` and the release fields (``u_*``) are fixed at creation, Closed and Canceled changes are
read-only, and a change leaves Authorize only through its approval records.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from release_mgmt.change_service import approvals as approval_rules
from release_mgmt.change_service import tables
from release_mgmt.change_service.fields import (
    AT_CREATION,
    LIFECYCLE,
    STATES,
    WRITABLE,
    ChangeRuleError,
    check_state,
    check_text,
    check_transition,
)
from release_mgmt.change_service.query import Query, Term
from release_mgmt.change_service.records import Approval, ChangeRequest, JournalEntry, as_record, now, upgrade
from release_mgmt.rules.change import (
    AUTHORIZE,
    CANCELED,
    CLOSE_CODES,
    CLOSED,
    FLOWS,
    NEW,
    SCHEDULED,
)

__all__ = ["LIFECYCLE", "STATES", "WRITABLE", "ChangeRuleError", "ChangeStore", "check_state", "check_text"]


def _minimum(value: str) -> int:
    try:
        return approval_rules.parse_minimum(value)
    except ValueError as exc:
        raise ChangeRuleError("Invalid value", str(exc), 400) from None


#: the longest text a long-text field (description, plans, notes, a work note) holds
TEXT_LIMIT = 65_536


def _limit(name: str) -> int:
    length = getattr(ChangeRequest.__table__.columns[name].type, "length", None)
    return int(length) if length else TEXT_LIMIT


class ChangeStore:
    """Change requests in one database (``url``: any SQLAlchemy URL; tables made when missing)."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_settings)
        upgrade(self.engine)

    def create(self, fields: Mapping[str, Any], user: str) -> dict[str, str]:
        values = _values(fields, WRITABLE)
        kind = values.get("type", "normal")
        if kind not in FLOWS:
            raise ChangeRuleError("Invalid type", f"type must be one of {', '.join(FLOWS)}, not {kind!r}", 400)
        _minimum(values.get("u_min_authorizations", "1"))
        asked, custom = values.get("requested_by", ""), values.get("u_requested_by", "")
        if asked and custom and asked != custom:
            raise ChangeRuleError("Invalid value", "requested_by and u_requested_by name different users", 400)
        if asked or custom:  # ServiceNow's field, and the release fields' name for it: one user
            values["requested_by"] = values["u_requested_by"] = asked or custom
        notes = check_text("work_notes", fields.get("work_notes"), TEXT_LIMIT)
        for attempt in range(5):  # two writers may pick the same next number: the loser retries
            try:
                return self._create(values, notes, user)
            except IntegrityError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def _create(self, values: dict[str, Any], notes: str, user: str) -> dict[str, str]:
        values = {k: v for k, v in values.items() if k != "state"}  # a new change starts New, as ServiceNow does
        with Session(self.engine) as session, session.begin():
            count = session.scalar(select(func.count()).select_from(ChangeRequest)) or 0
            change = ChangeRequest(
                sys_id=uuid.uuid4().hex,
                number=f"CHG{count + 1:07d}",
                sys_created_by=user,
                sys_created_on=now(),
                sys_updated_on=now(),
                sys_updated_by=user,
                opened_by=user,
                sys_mod_count=0,
                **values,
            )
            if change.type == "standard":  # pre-approved by definition
                change.approval = "approved"
            session.add(change)
            session.flush()
            if notes:
                session.add(_note(change.sys_id, notes, user))
            return as_record(change, "")

    def get(self, sys_id: str) -> dict[str, str] | None:
        with Session(self.engine) as session:
            change = session.get(ChangeRequest, check_text("sys_id", sys_id, 32))
            return as_record(change, self._notes(session, change.sys_id)) if change else None

    def query(
        self,
        filters: Iterable[tuple[str, str, str]],
        limit: int,
        order_by: str = "sys_created_on",
        descending: bool = False,
    ) -> list[dict[str, str]]:
        """Records matching every (field, operator, value) term, ``order_by`` first (every record: the
        console's own reads; the Table API reads pages through tables.read_page)."""
        clauses = [[Term(f, op, v)] for f, op, v in filters]
        query = Query([clauses] if clauses else [], [(order_by, descending)])
        return tables.read_page(self.engine, tables.CHANGES, query, offset=0, limit=limit, releases=None).records

    def update(self, sys_id: str, fields: Mapping[str, Any], user: str) -> dict[str, str] | None:
        """A lifecycle update: lifecycle fields, a state change along the model, a work note."""
        with Session(self.engine) as session, session.begin():
            change = session.get(ChangeRequest, check_text("sys_id", sys_id, 32))
            if change is None:
                return None
            if change.state in (CLOSED, CANCELED):
                raise ChangeRuleError(
                    "Record is read-only", f"{change.number} is {STATES[change.state]}; its fields cannot change"
                )
            _fixed_at_creation(change, fields)
            values = _values({k: v for k, v in fields.items() if k not in AT_CREATION}, LIFECYCLE)
            notes = check_text("work_notes", fields.get("work_notes"), TEXT_LIMIT)
            if "state" in values:
                check_transition(change, values["state"], values)
                if values["state"] == AUTHORIZE and change.state != AUTHORIZE:
                    self._request_approvals(session, change)
            for name, value in values.items():
                setattr(change, name, value)
            _touched(change, user)
            if notes:
                session.add(_note(change.sys_id, notes, user))
            session.flush()
            return as_record(change, self._notes(session, change.sys_id))

    def _request_approvals(self, session: Session, change: ChangeRequest) -> None:
        """One requested approval per eligible authorizer; refuses when too few are eligible to reach the quorum."""
        eligible = approval_rules.eligible(change.u_authorizers, excluded=(change.u_requested_by,))
        minimum = _minimum(change.u_min_authorizations)
        if len(eligible) < minimum:
            raise ChangeRuleError(
                "Not enough eligible authorizers",
                f"{change.number} needs {minimum} authorization(s) but only {len(eligible)} authorizer(s) may "
                f"give one ({', '.join(eligible) or 'none'}; the requester {change.u_requested_by or '-'} may not)",
                400,
            )
        session.query(Approval).filter(Approval.sysapproval == change.sys_id).delete()
        for name in eligible:
            session.add(
                Approval(
                    sys_id=uuid.uuid4().hex,
                    sysapproval=change.sys_id,
                    approver=name,
                    sys_created_on=now(),
                    sys_updated_on=now(),
                )
            )
        change.approval = "requested"

    def delete(self, sys_id: str) -> bool | None:
        """Delete a change that is still New (nothing assessed, authorized or done: no record of a decision is
        ever lost), with its journal and approval records. None: no such change."""
        with Session(self.engine) as session, session.begin():
            change = session.get(ChangeRequest, check_text("sys_id", sys_id, 32))
            if change is None:
                return None
            if change.state != NEW:
                raise ChangeRuleError(
                    "Operation against file 'change_request' was aborted by Business Rule 'Keep decided changes'",
                    f"{change.number} is {STATES[change.state]}; only a change still New may be deleted "
                    "(cancel it instead: state 4)",
                )
            for model, column in ((JournalEntry, JournalEntry.element_id), (Approval, Approval.sysapproval)):
                session.query(model).filter(column == change.sys_id).delete()
            session.delete(change)
            return True

    def approvals(self, change_sys_id: str | None = None, approval_sys_id: str | None = None) -> list[dict[str, str]]:
        """Approval records of one change, or one approval record, oldest first."""
        stmt = select(Approval).order_by(Approval.sys_created_on, Approval.approver)
        if change_sys_id is not None:
            stmt = stmt.where(Approval.sysapproval == check_text("sysapproval", change_sys_id, 32))
        if approval_sys_id is not None:
            stmt = stmt.where(Approval.sys_id == check_text("sys_id", approval_sys_id, 32))
        with Session(self.engine) as session:
            return [as_record(a) for a in session.scalars(stmt)]

    def decide(
        self, sys_id: str, approve: bool, user: str, comment: str, *, excluded: Iterable[str] = ()
    ) -> dict[str, str] | None:
        """``user`` answers their own requested approval of change ``sys_id``: approved once the quorum is
        reached (-> Scheduled), rejected by any one (-> Canceled). ``excluded``: users who may never decide
        (the run's triggering user, as Airflow knows it). Returns the change; None when there is no such change."""
        comment = check_text("comments", comment, 4000).strip()
        with Session(self.engine) as session, session.begin():
            change = session.get(ChangeRequest, check_text("sys_id", sys_id, 32))
            if change is None:
                return None
            rows = list(session.scalars(select(Approval).where(Approval.sysapproval == change.sys_id)))
            verdict = approval_rules.judge(
                number=change.number,
                state_is_authorize=change.state == AUTHORIZE,
                requests={a.approver: a.state for a in rows},
                user=user,
                approve=approve,
                comment=comment,
                excluded={change.u_requested_by, *excluded} - {""},
                minimum=_minimum(change.u_min_authorizations),
            )
            if verdict.refused:
                raise ChangeRuleError(verdict.message, verdict.detail, verdict.status)
            for row in rows:
                if row.approver == user:
                    row.state, row.comments = verdict.answer, comment
                    row.sys_updated_on, row.sys_updated_by = now(), user
                elif verdict.change_approval != "requested" and row.state == approval_rules.REQUESTED:
                    row.state, row.sys_updated_on = approval_rules.NOT_REQUIRED, now()
            change.approval = verdict.change_approval
            if verdict.change_approval == "approved":
                change.state = SCHEDULED
            elif verdict.change_approval == "rejected":
                change.state = CANCELED
            _touched(change, user)
            session.add(_note(change.sys_id, verdict.note, user))
            session.flush()
            return as_record(change, self._notes(session, change.sys_id))

    @staticmethod
    def _notes(session: Session, sys_id: str) -> str:
        """The work notes, newest first, as the journal shows them."""
        return tables.work_notes(session, [sys_id]).get(sys_id, "")


def _sqlite_settings(connection: Any, record: Any) -> None:
    """SQLite's LIKE ignores case; the query language's comparisons never do (query.py uses instr, and this
    keeps any LIKE the same)."""
    connection.execute("PRAGMA case_sensitive_like = ON")


def _touched(change: ChangeRequest, user: str) -> None:
    change.sys_updated_on, change.sys_updated_by = now(), user
    change.sys_mod_count = (change.sys_mod_count or 0) + 1


def _note(sys_id: str, text: str, user: str) -> JournalEntry:
    return JournalEntry(
        sys_id=uuid.uuid4().hex, element_id=sys_id, value=text, sys_created_by=user, sys_created_on=now()
    )


def _values(fields: Mapping[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    """The fields to write, each checked. Other names -- unknown fields, system fields such as ``approval``,
    ``number`` or ``sys_id`` -- are ignored, as ServiceNow ignores them: nothing but ``allowed`` is written."""
    values: dict[str, Any] = {}
    for name in (k for k in fields if k in allowed):
        values[name] = check_state(fields[name]) if name == "state" else check_text(name, fields[name], _limit(name))
    if values.get("close_code") and values["close_code"] not in CLOSE_CODES:
        raise ChangeRuleError("Invalid close_code", f"close_code must be one of {', '.join(CLOSE_CODES)}", 400)
    return values


def _fixed_at_creation(change: ChangeRequest, fields: Mapping[str, Any]) -> None:
    """``type``, the correlation id and the release fields never change after creation (the same value is fine)."""
    for name in (k for k in fields if k in AT_CREATION):
        if check_text(name, fields[name], _limit(name)) != str(getattr(change, name)):
            raise ChangeRuleError(
                "Field is read-only", f"{name} of {change.number} is fixed at creation ({getattr(change, name)!r})"
            )
