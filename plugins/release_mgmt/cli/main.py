"""``python -m release_mgmt``: validate definitions, export the definition schema."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from release_mgmt.definition.checks import shell_problems
from release_mgmt.definition.loader import load_paths
from release_mgmt.definition.models import json_schema
from release_mgmt.errors import ReleaseMgmtError

DEFAULT_RELEASES = Path("include/releases")


def cmd_validate(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.paths] or [DEFAULT_RELEASES]
    missing = [p for p in paths if not p.exists()]
    for path in missing:
        print(f"{path}: no such file or folder", file=sys.stderr)
    report = load_paths([p for p in paths if p.exists()])
    calendar_errors = _check_calendars(paths)
    for item in report.loaded:
        defn = item.definition
        print(
            f"{item.display}: ok: release {defn.name}, {len(defn.components)} component(s), "
            f"environments {' -> '.join(e.name for e in defn.environments)}"
        )
        for warning in shell_problems(defn)[1]:
            print(f"{warning.render(item.display)} (warning)")
    for error in report.errors:
        for line in error.lines():
            print(line)
    if not report.loaded and not report.errors and not missing:
        print("no release definitions (*.yaml, *.yml) found in " + ", ".join(map(str, paths)), file=sys.stderr)
        return 2
    total = len(report.loaded) + len(report.errors)
    print(f"{len(report.loaded)} of {total} definition(s) valid")
    return 1 if report.errors or missing or calendar_errors else 0


def _check_calendars(paths: list[Path]) -> int:
    """Validate the shared calendars beside each folder of definitions (include/calendars); count the broken."""
    from release_mgmt.definition.loader import load_calendar
    from release_mgmt.errors import DefinitionError

    broken = 0
    folders = {p.parent / "calendars" for p in paths if p.is_dir() and (p.parent / "calendars").is_dir()}
    for file in sorted(f for folder in folders for f in folder.glob("*.yaml")):
        try:
            load_calendar(file)
        except DefinitionError as exc:
            print("\n".join(exc.lines()))
            broken += 1
        else:
            print(f"{file}: ok: calendar")
    return broken


def cmd_schema(args: argparse.Namespace) -> int:
    if args.calendar:
        from release_mgmt.definition.calendars import CalendarFile

        schema = CalendarFile.model_json_schema(by_alias=True)
        schema["title"] = "release_mgmt shared calendar"
    else:
        schema = json_schema()
    text = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Per release, environment and component: the version running, since when, from which run."""
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


def cmd_gates(args: argparse.Namespace) -> int:
    """Pending approval gates, with who may answer them."""
    from release_mgmt.cli import approvals
    from release_mgmt.cli.rest import AirflowApi

    found = approvals.pending(AirflowApi(), args.dag)
    if not found:
        print("no approval gate is waiting")
    for gate in found:
        print(
            f"{gate.dag_id}  {gate.run_id}  {gate.environment}  {gate.gate}  approvers: {', '.join(gate.assigned)}"
            f"  -- {gate.subject}"
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


def cmd_answer(args: argparse.Namespace) -> int:
    """Approve or reject a pending gate as the caller (the gate itself judges the vote)."""
    from release_mgmt.cli import approvals
    from release_mgmt.cli.rest import AirflowApi
    from release_mgmt.gates.approval import APPROVE, REJECT

    if args.command == "reject" and not args.comment.strip():
        print("a reject needs --comment saying why", file=sys.stderr)
        return 2
    api = AirflowApi()
    gate = approvals.find(api, args.run_id, args.environment, args.gate)
    if args.dag and gate.dag_id != args.dag:
        print(f"run {args.run_id} belongs to {gate.dag_id}, not {args.dag}", file=sys.stderr)
        return 2
    approvals.answer(api, gate, APPROVE if args.command == "approve" else REJECT, args.comment)
    print(
        f"{args.command} sent for {gate.dag_id} {gate.run_id} {gate.environment} gate {gate.gate}; "
        "the gate's log says whether it counted"
    )
    return 0


def cmd_calendar(args: argparse.Namespace) -> int:
    """Upcoming freezes and maintenance windows per release and environment, local time and UTC."""
    from datetime import UTC, datetime, timedelta

    from release_mgmt.rules.windows import upcoming

    start = datetime.fromisoformat(args.start).astimezone(UTC) if args.start else datetime.now(UTC)
    end = start + timedelta(days=args.days)
    report = load_paths([Path(args.releases)])
    for error in report.errors:
        print("\n".join(error.lines()), file=sys.stderr)
    shown = 0
    for item in report.loaded:
        defn = item.definition
        if args.release and defn.name != args.release:
            continue
        for env in defn.environments:
            if args.environment and env.name != args.environment:
                continue
            occurrences = [o for o in upcoming(defn.windows, start, end) if o.window.applies_to(env.name, defn.name)]
            print(f"{defn.name} / {env.name}: " + (f"{len(occurrences)} window(s)" if occurrences else "no windows"))
            for occ in occurrences:
                print("  " + _calendar_line(occ))
            shown += 1
    if not shown:
        print("no matching release or environment", file=sys.stderr)
        return 1
    return 1 if report.errors else 0


def _calendar_line(occ: Any) -> str:
    zone = occ.window.zone
    local = f"{occ.start.astimezone(zone):%Y-%m-%d %H:%M %Z} to {occ.end.astimezone(zone):%Y-%m-%d %H:%M %Z}"
    utc = f"{occ.start:%Y-%m-%d %H:%MZ} to {occ.end:%Y-%m-%d %H:%MZ}"
    return f"{occ.window.kind:<11} {occ.window.name:<20} {local}  ({utc})  {occ.window.reason}"


def cmd_audit(args: argparse.Namespace) -> int:
    """The evidence report of one run, through the REST API with your credentials."""
    from release_mgmt.cli.rest import AirflowApi
    from release_mgmt.reports import evidence

    report = evidence.fetch(AirflowApi(), args.dag_id, args.run_id)
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
    item = next((i for i in report.loaded if i.definition.name == args.release), None)
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
        {c.name: c.version for c in defn.components},
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


def _rest_commands(sub: Any) -> None:
    """The commands that act through Airflow's REST API with the caller's credentials."""
    audit = sub.add_parser("audit", help="the evidence report of one run (REST API, your credentials)")
    audit.add_argument("dag_id")
    audit.add_argument("run_id")
    audit.add_argument("--format", choices=["md", "json"], default="md")
    audit.add_argument("--out", help="write to this file instead of standard output")
    audit.set_defaults(func=cmd_audit)
    hist = sub.add_parser("history", help="past runs per environment and the DORA figures (REST API)")
    hist.add_argument("release", help="the release name")
    hist.add_argument("--env", help="only this environment")
    hist.add_argument("--production", help="the environment DORA counts as production (default: the last)")
    hist.add_argument("--limit", type=int, default=50, help="how many recent runs (default 50)")
    hist.add_argument("--releases", default=str(DEFAULT_RELEASES), help="definitions folder")
    hist.set_defaults(func=cmd_history)
    gates = sub.add_parser("gates", help="list approval gates waiting for an answer (REST API, your credentials)")
    gates.add_argument("--dag", help="only this DAG (release_<name>)")
    gates.set_defaults(func=cmd_gates)
    locks = sub.add_parser("locks", help="environment locks: holders, waiting runs, history (REST API)")
    locks.add_argument("lock", nargs="?", help="one lock (e.g. webshop/prod or a shared name), with its history")
    locks.set_defaults(func=cmd_locks)
    for verb in ("approve", "reject"):
        answer = sub.add_parser(verb, help=f"{verb} a pending approval gate as yourself (REST API)")
        answer.add_argument("run_id")
        answer.add_argument("environment")
        answer.add_argument("--comment", default="", help="why (required to reject)")
        answer.add_argument("--gate", help="the gate's name when the environment has several")
        answer.add_argument("--dag", help="the DAG, when the run id alone is ambiguous")
        answer.set_defaults(func=cmd_answer)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m release_mgmt", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    validate = sub.add_parser("validate", help="check release definitions; exit 1 when any is invalid")
    validate.add_argument("paths", nargs="*", help=f"files or folders (default: {DEFAULT_RELEASES})")
    validate.set_defaults(func=cmd_validate)
    schema = sub.add_parser("schema", help="print (or write) the JSON schema of a release definition")
    schema.add_argument("--out", help="write to this file instead of standard output")
    schema.add_argument("--calendar", action="store_true", help="the schema of a shared calendar file instead")
    schema.set_defaults(func=cmd_schema)
    cal = sub.add_parser("calendar", help="upcoming freezes and maintenance windows per environment")
    cal.add_argument("environment", nargs="?", help="only this environment")
    cal.add_argument("--days", type=int, default=30, help="how far ahead (default 30)")
    cal.add_argument("--release", help="only this release (its name)")
    cal.add_argument("--from", dest="start", help="start instead of now, ISO 8601 with offset (e.g. 2026-12-01T00:00Z)")
    cal.add_argument("--releases", default=str(DEFAULT_RELEASES), help="definitions folder")
    cal.set_defaults(func=cmd_calendar)
    stat = sub.add_parser("status", help="what runs where: the deployment record per environment and component")
    stat.add_argument("release", nargs="?", help="one release (its name, not the DAG id); default: all")
    stat.add_argument("--releases", default=str(DEFAULT_RELEASES), help="definitions folder, for promotion order")
    stat.set_defaults(func=cmd_status)
    _rest_commands(sub)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ReleaseMgmtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
