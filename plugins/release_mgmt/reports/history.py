"""``python -m release_mgmt history``: past runs per environment, and the four DORA figures.

Pure summaries and figures here; ``fetch`` reads runs through Airflow's REST API with the caller's
credentials (states, the gates' decisions and the change numbers from XCom).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from release_mgmt.rules import outcomes


@dataclass(frozen=True)
class EnvRun:
    """One run in one environment."""

    status: str
    approvers: tuple[str, ...] = ()
    change: str = ""
    finished: datetime | None = None
    authorized_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunSummary:
    """One release run: when, by whom, which versions, and what happened per environment."""

    run_id: str
    started: datetime | None
    triggered_by: str
    versions: dict[str, str]
    environments: dict[str, EnvRun] = field(default_factory=dict)


def _median(values: Sequence[timedelta]) -> timedelta | None:
    return timedelta(seconds=statistics.median(v.total_seconds() for v in values)) if values else None


def dora(runs: Sequence[RunSummary], production: str) -> dict[str, Any]:
    """Deployment frequency (successful ``production`` deployments per day over the span of the runs),
    lead time (median, trigger to ``production`` done), change failure rate (failed among the runs that
    deployed to ``production``) and time to restore (median, from a failed ``production`` run to the next
    successful one)."""
    reached = sorted(
        (
            r
            for r in runs
            if production in r.environments
            and r.started
            and r.environments[production].status not in ("not_selected", "not_started")
        ),
        key=lambda r: r.started or datetime.min,
    )
    good = [r for r in reached if r.environments[production].status == "succeeded"]
    failed = [r for r in reached if r.environments[production].status != "succeeded"]
    starts = [r.started for r in runs if r.started]
    span_days = max((max(starts) - min(starts)).total_seconds() / 86400, 1.0) if starts else 1.0
    lead: list[timedelta] = []
    for run in good:
        done = run.environments[production].finished
        if done and run.started:
            lead.append(done - run.started)
    restore: list[timedelta] = []
    for bad in failed:
        fixed = next((g for g in good if g.started and bad.started and g.started > bad.started), None)
        fixed_at = fixed.environments[production].finished if fixed else None
        broke_at = bad.environments[production].finished
        if fixed_at and broke_at:
            restore.append(fixed_at - broke_at)
    return {
        "deployments_per_day": round(len(good) / span_days, 3),
        "lead_time": _median(lead),
        "change_failure_rate": round(len(failed) / len(reached), 3) if reached else None,
        "time_to_restore": _median(restore),
        "runs": len(runs),
        "production_deployments": len(reached),
    }


def lines(runs: Sequence[RunSummary], environments: Sequence[str]) -> list[str]:
    """One line per run and environment, newest first."""
    out = []
    for run in sorted(runs, key=lambda r: r.started or datetime.min, reverse=True):
        versions = " ".join(f"{c}={v}" for c, v in run.versions.items())
        for env in environments:
            entry = run.environments.get(env)
            if entry is None or entry.status in ("not_selected",):
                continue
            extra = [f"approvers {', '.join(entry.approvers)}"] if entry.approvers else []
            extra += [f"change {entry.change}"] if entry.change else []
            extra += [f"authorized by {', '.join(entry.authorized_by)}"] if entry.authorized_by else []
            when = run.started.isoformat(timespec="minutes") if run.started else "?"
            out.append(
                f"{when}  {env:<10} {entry.status:<15} {versions}  by {run.triggered_by or 'scheduler'}"
                f"  {run.run_id}" + (f"  ({'; '.join(extra)})" if extra else "")
            )
    return out


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def fetch(
    api: Any,
    dag_id: str,
    environments: Sequence[str],
    components: Sequence[str],
    defaults: dict[str, str],
    *,
    limit: int = 50,
) -> list[RunSummary]:
    """The last ``limit`` runs of ``dag_id`` as summaries."""
    base = f"/api/v2/dags/{quote(dag_id)}/dagRuns"
    runs = api.get(base, limit=limit, order_by="-run_after").get("dag_runs", [])
    summaries = []
    for run in runs:
        run_path = f"{base}/{quote(run['dag_run_id'])}"
        tis = api.get(f"{run_path}/taskInstances", limit=1000).get("task_instances", [])
        conf = run.get("conf") or {}
        chosen = conf.get("environments") or list(environments)
        envs = {}
        for env in environments:
            local = {t["task_id"].split(".", 1)[1]: t["state"] for t in tis if t["task_id"].startswith(f"{env}.")}
            result: dict[str, Any] = next((t for t in tis if t["task_id"] == f"{env}.result"), {})
            approvers: list[str] = []
            for task in (t for t in local if t.startswith("gate_")):
                decision = _xcom(api, run_path, f"{env}.{task}")
                approvers += decision.get("approvers", []) if isinstance(decision, dict) else []
            change = _xcom(api, run_path, f"{env}.change_open") if "change_open" in local else None
            authorized = _xcom(api, run_path, f"{env}.change_authorized") if "change_authorized" in local else None
            envs[env] = EnvRun(
                outcomes.environment_outcome(local, env in chosen).status,
                tuple(approvers),
                str(change.get("number", "")) if isinstance(change, dict) else "",
                _time(result.get("end_date")),
                tuple(authorized.get("authorized_by", [])) if isinstance(authorized, dict) else (),
            )
        versions = {c: str(conf.get(f"version_{c}", defaults.get(c, ""))) for c in components}
        summaries.append(
            RunSummary(
                run["dag_run_id"],
                _time(run.get("start_date") or run.get("run_after")),
                str(run.get("triggering_user_name") or ""),
                versions,
                envs,
            )
        )
    return summaries


def _xcom(api: Any, run_path: str, task_id: str) -> Any:
    from release_mgmt.errors import ApiError

    try:
        return api.get(f"{run_path}/taskInstances/{quote(task_id)}/xcomEntries/return_value").get("value")
    except ApiError:
        return None
