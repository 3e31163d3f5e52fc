"""The change service's records in SQLAlchemy: ``change_request``, its journal (``sys_journal_field``, work
notes) and its approval records (``sysapproval_approver``), every field stored as the Table API shows it.

:func:`upgrade` makes missing tables and adds columns a newer version defines to an older database (each
with its default), so a change database kept across upgrades keeps its records.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import ForeignKey, Integer, String, Text, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from release_mgmt.change_service import approvals as approval_rules
from release_mgmt.rules.change import NEW


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
    #: the release run the change belongs to (read access follows Airflow's permission on this DAG)
    u_airflow_dag_id: Mapped[str] = mapped_column(String(250), default="", index=True)
    u_airflow_run_id: Mapped[str] = mapped_column(String(250), default="")
    #: who asked for the change (the run's triggering user); never an eligible authorizer
    u_requested_by: Mapped[str] = mapped_column(String(100), default="")
    #: who may authorize (comma-separated Airflow user names, from the definition) and how many must
    u_authorizers: Mapped[str] = mapped_column(Text, default="")
    u_min_authorizations: Mapped[str] = mapped_column(String(10), default="1")
    sys_created_by: Mapped[str] = mapped_column(String(100), default="")
    sys_created_on: Mapped[str] = mapped_column(String(40))
    sys_updated_on: Mapped[str] = mapped_column(String(40))
    #: added by issue 18 (ServiceNow's standard fields); older databases get them from :func:`upgrade`
    opened_by: Mapped[str] = mapped_column(String(100), default="", server_default="")
    requested_by: Mapped[str] = mapped_column(String(100), default="", server_default="")
    sys_updated_by: Mapped[str] = mapped_column(String(100), default="", server_default="")
    sys_mod_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class JournalEntry(Base):
    """A work note on a change request."""

    __tablename__ = "sys_journal_field"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # the order notes were added
    sys_id: Mapped[str] = mapped_column(String(32), unique=True)
    element_id: Mapped[str] = mapped_column(ForeignKey("change_request.sys_id"), index=True)
    element: Mapped[str] = mapped_column(String(40), default="work_notes")
    name: Mapped[str] = mapped_column(String(80), default="change_request", server_default="change_request")
    value: Mapped[str] = mapped_column(Text)
    sys_created_by: Mapped[str] = mapped_column(String(100), default="")
    sys_created_on: Mapped[str] = mapped_column(String(40))


class Approval(Base):
    """One eligible authorizer's approval record of a change (ServiceNow's ``sysapproval_approver``)."""

    __tablename__ = "sysapproval_approver"

    sys_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sysapproval: Mapped[str] = mapped_column(ForeignKey("change_request.sys_id"), index=True)
    source_table: Mapped[str] = mapped_column(String(40), default="change_request")
    approver: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20), default=approval_rules.REQUESTED)
    comments: Mapped[str] = mapped_column(Text, default="")
    sys_created_on: Mapped[str] = mapped_column(String(40))
    sys_updated_on: Mapped[str] = mapped_column(String(40))
    sys_updated_by: Mapped[str] = mapped_column(String(100), default="")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def as_record(row: Base, work_notes: str | None = None) -> dict[str, str]:
    """A record as the Table API returns it: every value a string."""
    record = {c.name: str(getattr(row, c.name)) for c in type(row).__table__.columns}
    if isinstance(row, JournalEntry):
        record.pop("id")
    if work_notes is not None:
        record["work_notes"] = work_notes
    return record


def upgrade(engine: Engine) -> None:
    """Missing tables made, missing columns added with their server default."""
    Base.metadata.create_all(engine)
    inspector = inspect(engine)
    with engine.begin() as connection:
        for table in Base.metadata.sorted_tables:
            present = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in present or column.server_default is None:
                    continue
                kind = column.type.compile(engine.dialect)
                default = str(column.server_default.arg)  # type: ignore[attr-defined]
                literal = default if isinstance(column.type, Integer) else "'" + default.replace("'", "''") + "'"
                connection.execute(
                    text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind} NOT NULL DEFAULT {literal}")
                )
