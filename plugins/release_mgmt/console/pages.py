"""Releases, one release, one run and its evidence: what runs where, since when, by which run, and what the runs
in progress wait for."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from release_mgmt.console.app import Settings, Viewer, render, settings, viewer_of
from release_mgmt.console.sources import RunRow, Sources
from release_mgmt.console.waits import waits
from release_mgmt.dag.broken import broken_dag_id
from release_mgmt.definition.loader import LoadedDefinition
from release_mgmt.errors import ApiError
from release_mgmt.planning.graph import dag_id_for, lock_name

router = APIRouter()
ViewerDep = Depends(viewer_of)
SettingsDep = Depends(settings)
RECENT = 5


def readable(viewer: Viewer, config: Settings) -> tuple[list[LoadedDefinition], list[dict[str, Any]]]:
    """The valid definitions and the broken files (file, DAG id, problems) this viewer may read."""
    report = config.sources.definitions()
    loaded = [i for i in report.loaded if viewer.can_read(dag_id_for(i.definition.name))]
    broken = [
        {"file": e.file, "dag_id": broken_dag_id(e), "problems": e.lines()}
        for e in report.errors
        if viewer.can_read(broken_dag_id(e))
    ]
    return loaded, broken


@router.get("/")
def releases_page(request: Request, viewer: Viewer = ViewerDep, config: Settings = SettingsDep) -> Response:
    """Every release the viewer may read."""
    loaded, broken = readable(viewer, config)
    return render(request, "releases.html", releases=_releases(config, loaded), broken=broken, one=False)


@router.get("/dags/{dag_id}")
def release_page(request: Request, dag_id: str, viewer: Viewer = ViewerDep, config: Settings = SettingsDep) -> Response:
    """One release (the DAG page's Release tab); a broken one shows its errors."""
    loaded, broken = readable(viewer, config)
    mine = [i for i in loaded if dag_id_for(i.definition.name) == dag_id]
    errors = [b for b in broken if b["dag_id"] == dag_id]
    if not mine and not errors:
        raise HTTPException(404, detail=f"no release with DAG id {dag_id} (or you may not read it)")
    return render(request, "releases.html", releases=_releases(config, mine), broken=errors, one=True)


def _releases(config: Settings, loaded: list[LoadedDefinition]) -> list[dict[str, Any]]:
    sources = config.sources
    dag_ids = [dag_id_for(i.definition.name) for i in loaded]
    deployed: dict[tuple[str, str, str], Any] = {}
    for row in sources.deployments():
        deployed[(row.release, row.environment, row.component)] = row.record
    recent = _by_dag(sources.runs(dag_ids, limit=RECENT))
    active = _by_dag(sources.runs(dag_ids, limit=20, active_only=True))
    outcomes = sources.run_states({(dag_id_for(r), rec.run_id) for (r, _, _), rec in deployed.items()})
    locks = sources.locks() if any(active.values()) else {}
    result = []
    for item in sorted(loaded, key=lambda i: i.definition.name):
        defn = item.definition
        dag_id = dag_id_for(defn.name)
        grid = {
            env.name: {
                c.name: _deployed(deployed.get((defn.name, env.name, c.name)), dag_id, outcomes)
                for c in defn.components
            }
            for env in defn.environments
        }
        result.append(
            {
                "name": defn.name,
                "dag_id": dag_id,
                "file": item.display,
                "description": defn.description,
                "owner": defn.owner,
                "environments": [e.name for e in defn.environments],
                "components": [c.name for c in defn.components],
                "grid": grid,
                "controls": controls(item),
                "active": [_active(config, item, run, locks) for run in active.get(dag_id, [])],
                "recent": [_run(run) for run in recent.get(dag_id, [])],
            }
        )
    return result


def _by_dag(runs: Iterable[RunRow]) -> dict[str, list[RunRow]]:
    found: dict[str, list[RunRow]] = {}
    for run in runs:
        found.setdefault(run.dag_id, []).append(run)
    return found


def _deployed(record: Any, dag_id: str, outcomes: Mapping[tuple[str, str], str]) -> dict[str, Any] | None:
    if record is None:
        return None
    return {
        "version": record.version,
        "since": record.deployed_at,
        "run_id": record.run_id,
        "outcome": outcomes.get((dag_id, record.run_id), "unknown"),
        "change": record.change,
    }


def _run(run: RunRow) -> dict[str, Any]:
    versions = {k.removeprefix("version_"): v for k, v in sorted(run.conf.items()) if k.startswith("version_") and v}
    return {
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "state": run.state,
        "by": run.triggered_by or "the scheduler",
        "at": run.start or run.run_after,
        "versions": versions,
    }


def _active(config: Settings, item: LoadedDefinition, run: RunRow, locks: Mapping[str, Any]) -> dict[str, Any]:
    sources = config.sources
    states = sources.task_states(run.dag_id, run.run_id)
    changes = sources.store.query([("u_airflow_run_id", "=", run.run_id)], 50)
    links = {"approval": "/required_actions", "change": "changes/{sys_id}"}  # relative: under the console
    found = waits(
        item.definition,
        states,
        config.now(),
        changes=[c for c in changes if c.get("u_airflow_dag_id") == run.dag_id],
        locks=locks,
        triggered_by=run.triggered_by,
        links=links,
    )
    running = sorted(t for t, s in states.items() if s == "running")
    return {**_run(run), "waits": [asdict(w) for w in found], "running": running}


def controls(item: LoadedDefinition) -> list[dict[str, Any]]:
    """Per environment, the controls on the way: gates (who), change (type, authorizers), windows, lock."""
    defn = item.definition
    rows = []
    for env in defn.environments:
        gates = [_gate(g, defn.approver_groups) for g in env.gates]
        change = ""
        if env.change is not None:
            who = env.change.authorizers.names(defn.approver_groups, env.change.assignment_group)
            change = f"{env.change.type} change, {env.change.min_authorizations} of {', '.join(who) or 'nobody'}"
        windows = sorted({f"{w.kind} {w.name}" for w in defn.windows if w.applies_to(env.name, defn.name)})
        rows.append(
            {
                "environment": env.name,
                "gates": gates,
                "change": change,
                "windows": windows,
                "lock": lock_name(defn.name, env, defn.max_active_runs) or "",
            }
        )
    return rows


def _gate(gate: Any, groups: Mapping[str, Any]) -> str:
    people: list[str] = getattr(gate, "eligible", lambda _: [])(groups)
    return f"{gate.name}: {getattr(gate, 'min_approvals', 1)} of {', '.join(people) or 'nobody'}"


@router.get("/runs/{dag_id}/{run_id}")
def run_page(
    request: Request, dag_id: str, run_id: str, viewer: Viewer = ViewerDep, config: Settings = SettingsDep
) -> Response:
    """One run: its state, what it waits for, links to its evidence and to Airflow's run page."""
    if not viewer.can_read(dag_id):
        raise HTTPException(404, detail=f"no run {run_id} of {dag_id} (or you may not read it)")
    run = config.sources.run(dag_id, run_id)
    loaded, _ = readable(viewer, config)
    item = next((i for i in loaded if dag_id_for(i.definition.name) == dag_id), None)
    if run is None:
        raise HTTPException(404, detail=f"no run {run_id} of {dag_id}")
    active = _active(config, item, run, config.sources.locks()) if item else {**_run(run), "waits": []}
    return render(request, "run.html", run=active, release=item.definition.name if item else dag_id)


@router.get("/runs/{dag_id}/{run_id}/evidence")
def evidence_page(
    request: Request,
    dag_id: str,
    run_id: str,
    *,
    format: str = "html",  # noqa: A002 - the query parameter's name
    viewer: Viewer = ViewerDep,
    config: Settings = SettingsDep,
) -> Response:
    """The evidence report, read through Airflow's REST API as the viewer (what the CLI's audit prints)."""
    from release_mgmt.cli.rest import AirflowApi
    from release_mgmt.reports import evidence

    api = AirflowApi({"AIRFLOW_API_URL": config.api_url(), "AIRFLOW_API_TOKEN": viewer.token})
    try:
        report = evidence.fetch(api, dag_id, run_id)
    except ApiError as exc:
        if exc.status in (403, 404):
            raise HTTPException(404, detail=f"no run {run_id} of {dag_id} (or you may not read it)") from None
        raise HTTPException(503, detail=f"Airflow's API answered {exc.status} reading the run") from None
    stem = f"evidence-{dag_id}-{run_id}".replace(":", "_").replace("+", "_")
    if format == "json":
        body = json.dumps(report, indent=2, sort_keys=True) + "\n"
        return Response(body, media_type="application/json", headers=_attachment(f"{stem}.json"))
    if format == "md":
        return Response(evidence.to_markdown(report), media_type="text/markdown", headers=_attachment(f"{stem}.md"))
    return render(request, "evidence.html", report=report, dag_id=dag_id, run_id=run_id)


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}


__all__ = ["Sources", "controls", "readable", "router"]
