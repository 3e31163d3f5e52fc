"""``validate``, ``schema``, ``calendar``: the definitions and their calendars, read from files."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from release_mgmt.cli.common import DEFAULT_RELEASES
from release_mgmt.definition.checks import shell_problems
from release_mgmt.definition.loader import LoadedDefinition, load_paths
from release_mgmt.definition.models import json_schema


def cmd_validate(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.paths] or [DEFAULT_RELEASES]
    missing = [p for p in paths if not p.exists()]
    for path in missing:
        print(f"{path}: no such file or folder", file=sys.stderr)
    from release_mgmt.dag.builder import validated  # Airflow: the DAG each file becomes is built, as Airflow would

    report = validated([p for p in paths if p.exists()])
    calendar_errors = _check_calendars(paths, report.loaded) + _check_notify_files(paths, args.connections)
    calendar_errors += _check_trains(paths, report.loaded)
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


def _check_trains(paths: list[Path], loaded: Sequence[LoadedDefinition]) -> int:
    """Validate the trains beside each folder of definitions (include/trains) against its valid releases, each
    one's DAG built as Airflow would; count the broken."""
    from release_mgmt.dag.trains import build_train_dag
    from release_mgmt.definition.trains import load_trains

    releases = {item.definition.name: item.definition for item in loaded}
    broken = 0
    for folder in sorted({p.parent / "trains" for p in paths if p.is_dir() and (p.parent / "trains").is_dir()}):
        report = load_trains(folder, releases)
        for item in report.loaded:
            build_train_dag(item)
            train = item.train
            order = " -> ".join(e.name for e in train.environments)
            print(f"{item.source}: ok: train {train.name}, {len(train.members)} member(s), environments {order}")
        for error in report.errors:
            print("\n".join(error.lines()))
        broken += len(report.errors)
    return broken


def _check_calendars(paths: list[Path], loaded: Sequence[LoadedDefinition]) -> int:
    """Validate the shared calendars beside each folder of definitions (include/calendars); count the broken. A
    window scoped to releases or components that none of the folder's definitions has protects nothing: an error
    (when the folder has definitions to compare with)."""
    from release_mgmt.definition.shared import load_calendar

    folders = {p.parent / "calendars" for p in paths if p.is_dir() and (p.parent / "calendars").is_dir()}
    return sum(
        _check_file(
            file,
            load_calendar,
            lambda calendar: _unknown_scopes(calendar.windows, loaded) if loaded else [],
            "calendar",
        )
        for file in sorted(f for folder in folders for f in folder.glob("*.yaml"))
    )


def _check_notify_files(paths: list[Path], connections: bool = False) -> int:
    """Validate the directory (include/directory.yaml) and shared notification rules (include/notify) beside
    each folder of definitions, whether or not a definition uses them yet; count the broken. With
    ``connections``, each channel's Airflow connection must exist here and be of its kind's type."""
    from release_mgmt.definition.notify_files import DIRECTORY_FILE, RULES_FOLDER
    from release_mgmt.definition.notify_rules import Directory, SharedRules
    from release_mgmt.definition.shared import load_model

    parents = sorted({p.parent for p in paths if p.is_dir()})
    broken = sum(
        _check_file(
            folder / DIRECTORY_FILE,
            lambda file: load_model(file, Directory),
            _connection_problems if connections else lambda _: [],
            "directory",
        )
        for folder in parents
        if (folder / DIRECTORY_FILE).is_file()
    )
    rules = [f for folder in parents for f in sorted((folder / RULES_FOLDER).glob("*.yaml"))]
    return broken + sum(
        _check_file(f, lambda file: load_model(file, SharedRules), lambda _: [], "notification rules") for f in rules
    )


def _check_file(file: Path, load: Callable[[Path], Any], problems_of: Callable[[Any], list[str]], what: str) -> int:
    """One shared file: its errors, or the problems ``problems_of`` finds in it, or "ok"; 1 when it is broken."""
    from release_mgmt.errors import DefinitionError

    try:
        loaded = load(file)
    except DefinitionError as exc:
        print("\n".join(exc.lines()))
        return 1
    problems = problems_of(loaded)
    for problem in problems:
        print(f"{file}: {problem}")
    if not problems:
        print(f"{file}: ok: {what}")
    return int(bool(problems))


#: the connection types each channel kind works with
CONNECTION_TYPES = {"email": ("smtp", "email"), "webhook": ("http", "https")}


def _connection_problems(directory: Any) -> list[str]:
    """Channels whose Airflow connection this machine's Airflow does not have, or has of another type."""
    from airflow.sdk import BaseHook

    problems = []
    for name, channel in directory.channels.items():
        where = f"channels.{name}.connection"
        try:
            conn = BaseHook.get_connection(channel.connection)
        except Exception:  # noqa: BLE001 - not found, or no backend answered: either way, not usable here
            problems.append(f"{where}: no Airflow connection {channel.connection!r}; create it or fix the id")
            continue
        if conn.conn_type not in CONNECTION_TYPES[channel.kind]:
            kinds = " or ".join(CONNECTION_TYPES[channel.kind])
            problems.append(
                f"{where}: connection {channel.connection!r} is of type {conn.conn_type!r}; a {channel.kind} "
                f"channel needs {kinds}"
            )
    return problems


def _unknown_scopes(windows: Sequence[Any], loaded: Sequence[LoadedDefinition]) -> list[str]:
    releases = {item.definition.name for item in loaded}
    components = {c.name for item in loaded for c in item.definition.components}
    environments = {e.name for item in loaded for e in item.definition.environments}
    lines = []
    for i, window in enumerate(windows):
        for scope, known in (("releases", releases), ("components", components), ("environments", environments)):
            what = "is called" if scope == "releases" else f"has {scope[:-1]}"
            lines += [
                f"windows[{i}].{scope}[{j}]: no release here {what} {name!r}, so this window protects nothing there; "
                f"known: {', '.join(sorted(known))}"
                for j, name in enumerate(getattr(window, scope))
                if name not in known
            ]
    return lines


def cmd_schema(args: argparse.Namespace) -> int:
    if args.calendar:
        from release_mgmt.definition.calendars import CalendarFile

        schema = CalendarFile.model_json_schema(by_alias=True)
        schema["title"] = "release_mgmt shared calendar"
    elif args.directory:
        from release_mgmt.definition.notify_rules import Directory

        schema = Directory.model_json_schema(by_alias=True)
        schema["title"] = "release_mgmt notification directory"
    elif args.train:
        from release_mgmt.definition.trains import json_schema as train_schema

        schema = train_schema()
    else:
        schema = json_schema()
    text = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
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


def add_commands(sub: Any) -> None:
    """Register the group's commands on the root parser's subparsers."""
    validate = sub.add_parser("validate", help="check release definitions; exit 1 when any is invalid")
    validate.add_argument("paths", nargs="*", help=f"files or folders (default: {DEFAULT_RELEASES})")
    validate.add_argument(
        "--connections",
        action="store_true",
        help="also check that each notification channel's Airflow connection exists here, of the right type",
    )
    validate.set_defaults(func=cmd_validate)
    schema = sub.add_parser("schema", help="print (or write) the JSON schema of a release definition")
    schema.add_argument("--out", help="write to this file instead of standard output")
    schema.add_argument("--calendar", action="store_true", help="the schema of a shared calendar file instead")
    schema.add_argument("--directory", action="store_true", help="the schema of the notification directory instead")
    schema.add_argument("--train", action="store_true", help="the schema of a release train file instead")
    schema.set_defaults(func=cmd_schema)
    cal = sub.add_parser("calendar", help="upcoming freezes and maintenance windows per environment")
    cal.add_argument("environment", nargs="?", help="only this environment")
    cal.add_argument("--days", type=int, default=30, help="how far ahead (default 30)")
    cal.add_argument("--release", help="only this release (its name)")
    cal.add_argument("--from", dest="start", help="start instead of now, ISO 8601 with offset (e.g. 2026-12-01T00:00Z)")
    cal.add_argument("--releases", default=str(DEFAULT_RELEASES), help="definitions folder")
    cal.set_defaults(func=cmd_calendar)
