"""``status``, ``audit``, ``history``, ``locks``: what ran and runs where (the metadata database or the REST API
with the caller's credentials)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from release_mgmt.cli.common import DEFAULT_RELEASES, release_and_dag, release_names
from release_mgmt.definition.loader import load_paths


def cmd_status(args: argparse.Namespace) -> int:
    """Per release, environment and component: the version running, since when, from which run."""
    if not (os.environ.get("AIRFLOW_HOME") or os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")):
        print(  # Airflow would create an empty ~/airflow and answer "no deployments"
            "error: which Airflow? set AIRFLOW_HOME to it: .airflow for scripts/run-local.sh, .airflow/run-once "
            "for scripts/run-local.sh --once (or AIRFLOW__DATABASE__SQL_ALCHEMY_CONN to its database)",
            file=sys.stderr,
        )
        return 2
    from release_mgmt.reports import status

    rows = status.running(args.release)
    if not rows:
        print(f"no deployments recorded{' for release ' + args.release if args.release else ''}")
        return 0
    report = load_paths([Path(args.releases)]) if Path(args.releases).is_dir() else None
    order = {i.definition.name: [e.name for e in i.definition.environments] for i in report.loaded} if report else {}
    for line in status.table(rows, order):
        print(line)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """The evidence report of one run, through the REST API with your credentials."""
    from release_mgmt.cli.rest import AirflowApi
    from release_mgmt.reports import evidence

    _, dag_id = release_and_dag(args.dag_id, release_names(Path(args.releases)))
    report = evidence.fetch(AirflowApi(), dag_id, args.run_id)
    text = evidence.to_markdown(report) if args.format == "md" else json.dumps(report, indent=2, sort_keys=True)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.out} (sha256 {report['digest']})")
    else:
        print(text)
    return 1 if report["malformed_audit_lines"] else 0


def cmd_history(args: argparse.Namespace) -> int:
    """Past runs per environment (versions, outcome, approvers, change numbers) and the DORA figures."""
    from release_mgmt.cli.rest import AirflowApi
    from release_mgmt.planning import dag_id_for
    from release_mgmt.reports import history

    report = load_paths([Path(args.releases)])
    name, _ = release_and_dag(args.release, [i.definition.name for i in report.loaded])
    item = next((i for i in report.loaded if i.definition.name == name), None)
    if item is None:
        print(f"no valid release {args.release!r} in {args.releases}", file=sys.stderr)
        return 2
    defn = item.definition
    envs = [e.name for e in defn.environments]
    runs = history.fetch(
        AirflowApi(),
        dag_id_for(defn.name),
        envs,
        [c.name for c in defn.components],
        {c.name: c.version or "" for c in defn.components},
        limit=args.limit,
    )
    for line in history.lines(runs, [args.env] if args.env else envs):
        print(line)
    figures = history.dora(runs, args.production or envs[-1])
    print(
        f"DORA ({args.production or envs[-1]}, last {figures['runs']} runs): "
        f"{figures['deployments_per_day']} deployments/day, lead time {figures['lead_time']}, "
        f"change failure rate {figures['change_failure_rate']}, time to restore {figures['time_to_restore']}"
    )
    return 0


def cmd_locks(args: argparse.Namespace) -> int:
    """Environment locks: who holds each, who waits; with a name, its recent history too."""
    from release_mgmt.cli.rest import AirflowApi
    from release_mgmt.hooks.locks import LOCKS, describe

    query = {"lock": args.lock} if args.lock else {}
    found = AirflowApi().get(f"/change-service{LOCKS}", **query)["result"]
    locks = [found] if args.lock else found
    if not locks:
        print("no environment lock was ever taken")
    for lock in locks:
        print(f"{lock['lock']}: held by {describe(lock['holder'])}")
        for position, waiter in enumerate(lock["queue"], start=1):
            print(f"  {position}. waiting: {describe(waiter)}")
        for past in lock.get("history", []):
            if past["state"] == "released":
                print(
                    f"  was held by {past['dag_id']} run {past['run_id']} ({past['environment']}) "
                    f"{past['granted_on'] or '(never granted)'} .. {past['released_on']}: {past['released_why']}"
                )
    return 0


def add_commands(sub: Any) -> None:
    """Register the group's commands on the root parser's subparsers."""
    stat = sub.add_parser("status", help="what runs where: the deployment record per environment and component")
    stat.add_argument("release", nargs="?", help="one release (its name, not the DAG id); default: all")
    stat.add_argument("--releases", default=str(DEFAULT_RELEASES), help="definitions folder, for promotion order")
    stat.set_defaults(func=cmd_status)
    audit = sub.add_parser("audit", help="the evidence report of one run (REST API, your credentials)")
    audit.add_argument("dag_id", metavar="release", help="the release's name or its DAG id")
    audit.add_argument("run_id")
    audit.add_argument("--format", choices=["md", "json"], default="md")
    audit.add_argument("--out", help="write to this file instead of standard output")
    audit.add_argument("--releases", default=str(DEFAULT_RELEASES), help="definitions folder, for release names")
    audit.set_defaults(func=cmd_audit)
    hist = sub.add_parser("history", help="past runs per environment and the DORA figures (REST API)")
    hist.add_argument("release", help="the release's name or its DAG id")
    hist.add_argument("--env", help="only this environment")
    hist.add_argument("--production", help="the environment DORA counts as production (default: the last)")
    hist.add_argument("--limit", type=int, default=50, help="how many recent runs (default 50)")
    hist.add_argument("--releases", default=str(DEFAULT_RELEASES), help="definitions folder")
    hist.set_defaults(func=cmd_history)
    locks = sub.add_parser("locks", help="environment locks: holders, waiting runs, history (REST API)")
    locks.add_argument("lock", nargs="?", help="one lock (e.g. webshop/prod or a shared name), with its history")
    locks.set_defaults(func=cmd_locks)
