"""``python -m tools.run_once`` (what ``scripts/run-local.sh --once`` runs):
run a release once on a local multi-process Airflow, answer its gates, print the outcome.

Starts the API server, scheduler and DAG processor (``local_airflow.LocalAirflow``) with the
given AIRFLOW_HOME (its database, and so the deployment record, is kept between runs), triggers
the release as ``admin``, approves each gate that waits as the first approver who is not the
triggerer and authorizes its change requests as ``bob`` (a demo of the approval paths; the logs
and the change's work notes say who), and stops Airflow.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from release_mgmt.cli import approvals
from release_mgmt.definition.loader import load_paths
from release_mgmt.planning import dag_id_for
from release_mgmt.rules import outcomes
from tools.local_airflow import LocalAirflow

DEMO_USERS = {"admin": "admin", "alice": "user", "bob": "user"}


def run_once(release: str, conf: dict[str, Any], home: Path, releases: Path, seconds: float = 900) -> int:
    """Run ``release`` with ``conf``; print one line per environment; 0 when the run succeeded."""
    report = load_paths([releases])
    item = next((i for i in report.loaded if i.definition.name == release), None)
    if item is None:
        print(f"no valid release {release!r} in {releases}")
        for error in report.errors:
            print("\n".join(error.lines()))
        return 2
    dag_id = dag_id_for(release)
    airflow = LocalAirflow(home, releases, users=DEMO_USERS)
    print(f"starting a local Airflow (home {home}, logs there) ...", flush=True)
    airflow.start()
    try:
        run_id = airflow.trigger(dag_id, "admin", conf)
        print(f"triggered {dag_id} as admin: run {run_id} with {conf or 'default parameters'}", flush=True)
        state = drive(airflow, dag_id, run_id, seconds)
        states = airflow.states(dag_id, run_id)
    finally:
        airflow.stop()
    chosen = conf.get("environments") or [e.name for e in item.definition.environments]
    for env in item.definition.environments:
        local = {t.split(".", 1)[1]: s for t, s in states.items() if t.startswith(f"{env.name}.")}
        print("  " + outcomes.environment_outcome(local, env.name in chosen).sentence(env.name))
    print(f"run {run_id}: {state}")
    print(
        "the deployed environments keep running (their URLs are in the task logs); scripts/run-local.sh --stop-sample"
    )
    return 0 if state == "success" else 1


def _changes_to_authorize(airflow: LocalAirflow, run_id: str, done: set[str]) -> list[dict[str, Any]]:
    """This run's changes waiting in Authorize in the built-in change service."""
    status, found = airflow.request(
        "GET", "/change-service/api/now/table/change_request?sysparm_query=state=-3", "admin"
    )
    if status != 200:
        return []
    return [c for c in found["result"] if run_id in c["correlation_id"] and c["sys_id"] not in done]


def drive(airflow: LocalAirflow, dag_id: str, run_id: str, seconds: float) -> str:
    """Wait for the run to finish, approving each gate once it waits for an answer (as its first
    approver who is not the triggerer) and authorizing each change as ``bob``, all over the REST API."""
    deadline = time.monotonic() + seconds
    answered: set[str] = set()
    while time.monotonic() < deadline:
        state = airflow.run_state(dag_id, run_id)
        if state in ("success", "failed"):
            return state
        for change in _changes_to_authorize(airflow, run_id, answered):
            airflow.client("bob").send(
                "POST",
                f"/change-service/api/release_mgmt/change_request/{change['sys_id']}/approve",
                {"comment": "authorized by run-once (demo)"},
            )
            print(f"  change {change['number']} authorized by bob", flush=True)
            answered.add(change["sys_id"])
        for gate in approvals.pending(airflow.client("admin"), dag_id):
            if gate.run_id != run_id or gate.task_id in answered:
                continue
            approver = next(u for u in gate.assigned if u != "admin")
            time.sleep(3)  # let the scheduler take in the parking first (see README, approval gates)
            approvals.answer(airflow.client(approver), gate, "Approve", "approved by run-once (demo)")
            print(f"  {gate.environment}: gate {gate.gate} approved by {approver}", flush=True)
            answered.add(gate.task_id)
        time.sleep(1)
    return "timed out"


def main(argv: list[str] | None = None) -> int:
    """``python -m tools.run_once RELEASE [--conf JSON] [--releases DIR] [--home DIR]``."""
    import argparse
    import json
    import os

    cli = argparse.ArgumentParser(prog="python -m tools.run_once", description=__doc__)
    cli.add_argument("release", help="the release name (e.g. sample_webshop)")
    cli.add_argument("--conf", default="{}", help='trigger parameters as JSON, e.g. \'{"version_web": "1.3.0"}\'')
    cli.add_argument("--releases", default="include/releases", help="definitions folder")
    cli.add_argument("--home", help="AIRFLOW_HOME for this Airflow (default: $AIRFLOW_HOME/run-once)")
    args = cli.parse_args(argv)
    home = Path(args.home or Path(os.environ.get("AIRFLOW_HOME", ".airflow")) / "run-once")
    return run_once(args.release, json.loads(args.conf), home.resolve(), Path(args.releases).resolve())


if __name__ == "__main__":
    raise SystemExit(main())
