"""``python -m release_mgmt status``: what runs where, read from the deployment record.

Reads Airflow's metadata database (as the ``airflow`` CLI does), so it runs where Airflow is
configured: on the scheduler or API server host, or any machine with the same settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from release_mgmt.errors import ReleaseMgmtError
from release_mgmt.records.deployment import DeploymentRecord

PREFIX = "release_mgmt/"


@dataclass(frozen=True)
class Running:
    """One row of the status: a component's recorded version in one environment of one release."""

    release: str
    environment: str
    component: str
    record: DeploymentRecord


def running(release: str | None = None) -> list[Running]:
    """The latest recorded deployment of every component, per release and environment."""
    from sqlalchemy.exc import OperationalError

    pattern = f"{PREFIX}{release}/%" if release else f"{PREFIX}%"
    try:
        return _read(pattern)
    except OperationalError as exc:
        from airflow.configuration import conf
        from sqlalchemy.engine import make_url

        where = make_url(conf.get("database", "sql_alchemy_conn")).render_as_string(hide_password=True)
        raise ReleaseMgmtError(
            f"cannot read Airflow's metadata database ({where}): "
            f"{str(exc.orig).splitlines()[0]}; set AIRFLOW_HOME (or AIRFLOW__DATABASE__SQL_ALCHEMY_CONN) to the "
            "Airflow whose deployments you want to see"
        ) from None


def _read(pattern: str) -> list[Running]:
    """One query: every record asset's newest event (by time, then id)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    rank = (
        func.row_number()
        .over(partition_by=AssetEvent.asset_id, order_by=(AssetEvent.timestamp.desc(), AssetEvent.id.desc()))
        .label("rank")
    )
    newest = (
        select(AssetEvent.id, rank)
        .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        .where(AssetModel.name.like(pattern))
        .subquery()
    )
    stmt = (
        select(AssetModel.name, AssetEvent.extra, AssetEvent.timestamp)
        .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
        .join(newest, newest.c.id == AssetEvent.id)
        .where(newest.c.rank == 1)
        .order_by(AssetModel.name)
    )
    rows: list[Running] = []
    with create_session() as session:
        for name, extra, timestamp in session.execute(stmt):
            record = DeploymentRecord.from_extra(extra or {}, timestamp)
            parts = name.removeprefix(PREFIX).split("/")
            if record is not None and len(parts) == 3:
                rows.append(Running(parts[0], parts[1], parts[2], record))
    return rows


def table(rows: list[Running], order: dict[str, list[str]] | None = None) -> list[str]:
    """Lines to print: environments in promotion order when ``order`` (release -> environments) knows it."""
    order = order or {}

    def key(row: Running) -> tuple[str, int, str, str]:
        envs = order.get(row.release, [])
        rank = envs.index(row.environment) if row.environment in envs else len(envs)
        return (row.release, rank, row.environment, row.component)

    header = ("RELEASE", "ENVIRONMENT", "COMPONENT", "VERSION", "SINCE", "RUN")
    body = [
        (r.release, r.environment, r.component, r.record.version, r.record.deployed_at, r.record.run_id)
        for r in sorted(rows, key=key)
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *body, strict=False)]
    return ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in (header, *body)]
