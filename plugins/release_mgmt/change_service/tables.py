"""The tables the Table API serves (``change_request``, ``sysapproval_approver``, ``sys_journal_field``): what
a query may name, how a page of records is read (filter, order, offset, limit, total), and how a record is
shown (``sysparm_display_value``, ``sysparm_exclude_reference_link``, ``sysparm_fields``).

Reading is limited to the releases the caller may read, in SQL, so paging and ``X-Total-Count`` count only
what the caller sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, true
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from release_mgmt.change_service import approvals as approval_rules
from release_mgmt.change_service.fields import STATES, ChangeRuleError
from release_mgmt.change_service.query import Columns, Query, compile_query, order_by, select_fields
from release_mgmt.change_service.records import Approval, Base, ChangeRequest, JournalEntry, as_record

APPROVAL_LABELS = {
    "not requested": "Not Yet Requested",
    "requested": "Requested",
    "approved": "Approved",
    "rejected": "Rejected",
    approval_rules.NOT_REQUIRED: "No Longer Required",
}
TYPE_LABELS = {"normal": "Normal", "standard": "Standard", "emergency": "Emergency"}
DISPLAY_MODES = ("false", "true", "all")


@dataclass(frozen=True)
class Table:
    """One served table: its model, which fields are references (field -> referenced table), which show a
    label (field -> value -> label), which are numbers, and how its records reach the change they belong to."""

    name: str
    model: type[Base]
    references: Mapping[str, str]
    choices: Mapping[str, Mapping[str, str]]
    numeric: frozenset[str]
    default_order: str
    tiebreak: str
    #: the column holding the change's sys_id (None: the record is the change)
    change_column: str | None = None
    hidden: frozenset[str] = field(default_factory=frozenset)

    def columns(self, engine: Engine) -> Columns:
        table = self.model.__table__
        named = {c.name: c for c in table.columns if c.name not in self.hidden}
        return Columns(named, self.numeric, engine.dialect.name)

    def visible(self, releases: list[str] | None) -> Any:
        """Records of the releases (DAG ids) listed; None: every record."""
        if releases is None:
            return true()
        if self.change_column is None:
            return ChangeRequest.u_airflow_dag_id.in_(releases)
        owned = select(ChangeRequest.sys_id).where(ChangeRequest.u_airflow_dag_id.in_(releases))
        return getattr(self.model, self.change_column).in_(owned)


CHANGES = Table(
    "change_request",
    ChangeRequest,
    references={
        "assignment_group": "sys_user_group",
        "cmdb_ci": "cmdb_ci",
        "opened_by": "sys_user",
        "requested_by": "sys_user",
    },
    choices={"state": {str(k): v for k, v in STATES.items()}, "approval": APPROVAL_LABELS, "type": TYPE_LABELS},
    numeric=frozenset({"state", "sys_mod_count"}),
    default_order="sys_created_on",
    tiebreak="number",
)
APPROVALS = Table(
    "sysapproval_approver",
    Approval,
    references={"approver": "sys_user", "sysapproval": "change_request"},
    choices={"state": APPROVAL_LABELS},
    numeric=frozenset(),
    default_order="sys_created_on",
    tiebreak="sys_id",
    change_column="sysapproval",
)
JOURNAL = Table(
    "sys_journal_field",
    JournalEntry,
    references={},
    choices={},
    numeric=frozenset(),
    default_order="sys_created_on",
    tiebreak="id",
    change_column="element_id",
    hidden=frozenset({"id"}),
)
TABLES = {t.name: t for t in (CHANGES, APPROVALS, JOURNAL)}


@dataclass(frozen=True)
class Page:
    records: list[dict[str, str]]
    total: int


def read_page(
    engine: Engine, table: Table, query: Query, *, offset: int, limit: int, releases: list[str] | None
) -> Page:
    """One page of ``table``'s records matching ``query`` among the ``releases`` the caller may read."""
    columns = table.columns(engine)
    where = compile_query(query, columns) & table.visible(releases)
    order = order_by(query, columns, table.default_order, getattr(table.model, table.tiebreak))
    with Session(engine) as session:
        total = session.scalar(select(func.count()).select_from(table.model).where(where)) or 0
        rows: list[Any] = list(
            session.scalars(select(table.model).where(where).order_by(*order).offset(offset).limit(limit))
        )
        if table is not CHANGES:
            return Page([as_record(r) for r in rows], int(total))
        notes = work_notes(session, [r.sys_id for r in rows])
        records = [as_record(r, notes.get(r.sys_id, "")) for r in rows]
    return Page(records, int(total))


def work_notes(session: Session, sys_ids: list[str]) -> dict[str, str]:
    """Each change's work notes, newest first, as the journal shows them (one query for the page)."""
    found: dict[str, list[str]] = {}
    if not sys_ids:
        return {}
    stmt = select(JournalEntry).where(JournalEntry.element_id.in_(sys_ids)).order_by(JournalEntry.id.desc())
    for e in session.scalars(stmt):
        found.setdefault(e.element_id, []).append(f"{e.sys_created_on} - {e.sys_created_by} (Work notes)\n{e.value}")
    return {k: "\n\n".join(v) for k, v in found.items()}


def release_ids(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return [str(d) for d in session.scalars(select(ChangeRequest.u_airflow_dag_id).distinct())]


def numbers(engine: Engine, sys_ids: Iterable[str]) -> dict[str, str]:
    """Change sys_id -> number (the display value of an approval's ``sysapproval``)."""
    wanted = sorted(set(sys_ids))
    if not wanted:
        return {}
    with Session(engine) as session:
        stmt = select(ChangeRequest.sys_id, ChangeRequest.number).where(ChangeRequest.sys_id.in_(wanted))
        return {str(s): str(n) for s, n in session.execute(stmt).all()}


@dataclass(frozen=True)
class Shown:
    """How records are shown: ``display`` (false, true, all), reference links or not, the fields asked for,
    the instance URL links start with, and display values looked up elsewhere (field -> value -> label)."""

    display: str = "false"
    links: bool = True
    fields: str | None = None
    base: str = ""
    lookups: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def of(cls, display: str, exclude_links: str, fields: str | None, base: str) -> Shown:
        mode = (display or "false").lower()
        if mode not in DISPLAY_MODES:
            raise ChangeRuleError("Invalid parameter", "sysparm_display_value is true, false or all", 400)
        return cls(mode, (exclude_links or "false").lower() != "true", fields, base.rstrip("/"))


def show(table: Table, record: Mapping[str, str], shown: Shown) -> dict[str, Any]:
    """``record`` as ServiceNow shows it under ``shown``."""
    out: dict[str, Any] = {}
    for name, value in select_fields(dict(record), shown.fields).items():
        label = _label(table, name, value, shown.lookups)
        link = (
            f"{shown.base}/api/now/table/{table.references[name]}/{value}" if name in table.references and value else ""
        )
        if shown.display == "all":
            out[name] = {"display_value": label, "value": value} | ({"link": link} if link and shown.links else {})
        elif link and value and shown.links:
            key = "display_value" if shown.display == "true" else "value"
            out[name] = {"link": link, key: label if shown.display == "true" else value}
        else:
            out[name] = label if shown.display == "true" else value
    return out


def _label(table: Table, name: str, value: str, lookups: Mapping[str, Mapping[str, str]]) -> str:
    if name in lookups:
        return lookups[name].get(value, value)
    return table.choices.get(name, {}).get(value, value)


Reader = Callable[[str], bool]


def readable_releases(engine: Engine, may_read: Reader | None) -> list[str] | None:
    """The releases a caller may read (``may_read(dag_id)``); None when the caller may read every record."""
    if may_read is None:
        return None
    return [d for d in release_ids(engine) if may_read(d)]
