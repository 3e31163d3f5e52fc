"""The deployment record: one Airflow asset per release, environment and component.

Every successful deployment (deployed and validated) adds an asset event whose ``extra`` holds
the version, the run and the time. The latest event is the last known good version: rollback
restores it, the promotion rule checks it, ``python -m release_mgmt status`` prints it. Assets
live in Airflow's database, so the record survives restarts and is visible in the Assets view.

Events are added through an asset alias, so only a real deployment records anything (a dry run
succeeds without an event).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow.sdk import Asset, AssetAlias, Context


def asset_name(release: str, environment: str, component: str) -> str:
    """The record's asset name (also its URI)."""
    return f"release_mgmt/{release}/{environment}/{component}"


def record_asset(release: str, environment: str, component: str) -> Asset:
    """The asset holding the deployments of ``component`` in ``environment``."""
    name = asset_name(release, environment, component)
    return Asset(name=name, uri=f"release-mgmt://{release}/{environment}/{component}", group="release_mgmt")


def record_alias(release: str, environment: str, component: str) -> AssetAlias:
    """The alias through which a successful deployment adds its event."""
    return AssetAlias(name=f"{asset_name(release, environment, component)}#deployments", group="release_mgmt")


@dataclass(frozen=True)
class DeploymentRecord:
    """One recorded deployment."""

    version: str
    run_id: str
    deployed_at: str
    change: str = ""
    #: when the deploying run was triggered (ISO 8601): tells a later run's deployment from an earlier one's
    run_after: str = ""
    #: where the version came from (a version source's reference, e.g. a repository and tag), and its content
    #: digest (a commit, an image digest); empty for a version typed in the trigger form
    source: str = ""
    digest: str = ""

    def describe(self) -> str:
        return f"{self.version} (since {self.deployed_at}, run {self.run_id})"

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any], timestamp: datetime | str | None) -> DeploymentRecord | None:
        version = extra.get("version")
        if not isinstance(version, str) or not version:
            return None
        stamp = timestamp.isoformat() if isinstance(timestamp, datetime) else str(timestamp or "")
        return cls(
            version,
            str(extra.get("run_id", "")),
            str(extra.get("deployed_at") or stamp),
            str(extra.get("change", "")),
            str(extra.get("run_after", "")),
            str(extra.get("source", "")),
            str(extra.get("digest", "")),
        )


def latest(context: Context, asset: Asset) -> DeploymentRecord | None:
    """The last recorded deployment of ``asset`` (which must be one of the task's inlets)."""
    events = context["inlet_events"][asset].ascending(False).limit(1)
    for event in events:
        record = DeploymentRecord.from_extra(event.extra or {}, event.timestamp)
        if record is not None:
            return record
    return None


def add(context: Context, release: str, environment: str, component: str, record: DeploymentRecord) -> None:
    """Record a successful deployment (the task must have the alias among its outlets)."""
    alias = record_alias(release, environment, component)
    context["outlet_events"][alias].add(
        record_asset(release, environment, component),
        extra={
            "version": record.version,
            "run_id": record.run_id,
            "deployed_at": record.deployed_at,
            "change": record.change,
            "run_after": record.run_after,
            "source": record.source,
            "digest": record.digest,
            "release": release,
            "environment": environment,
            "component": component,
        },
    )
