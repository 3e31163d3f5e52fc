"""``notes``: the release notes of a release's git-sourced components for one environment: the commits from the
version it runs now (its deployment record, or ``--from``) to the version its source gives now (or ``--to``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from release_mgmt.cli.common import DEFAULT_RELEASES
from release_mgmt.definition.loader import load_paths
from release_mgmt.errors import SourceError
from release_mgmt.sources import SourceContext
from release_mgmt.sources.notes import to_markdown


def _recorded(release: str) -> dict[tuple[str, str], str]:
    """(environment, component) -> the version recorded there; empty when no Airflow is configured."""
    if not (os.environ.get("AIRFLOW_HOME") or os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")):
        return {}
    from release_mgmt.reports import status

    return {(r.environment, r.component): r.record.version for r in status.running(release)}


def cmd_notes(args: argparse.Namespace) -> int:
    """Print the notes; exit 1 naming the component and reason when a source cannot answer."""
    report = load_paths([Path(args.releases)])
    item = next((i for i in report.loaded if i.definition.name == args.release), None)
    if item is None:
        print(f"error: no valid release {args.release!r} in {args.releases}", file=sys.stderr)
        return 2
    defn = item.definition
    envs = [e.name for e in defn.environments]
    if args.env not in envs:
        print(f"error: release {defn.name} has no environment {args.env!r} (it has {', '.join(envs)})", file=sys.stderr)
        return 2
    recorded = _recorded(defn.name) if args.since is None else {}
    sourced = [c for c in defn.components if c.source is not None and c.source.has_notes]
    if not sourced:
        print(f"release {defn.name} has no component with a git source: no notes to write")
        return 0
    position = envs.index(args.env)
    failed = 0
    for comp in sourced:
        source: Any = comp.source
        previous = args.since if args.since is not None else recorded.get((args.env, comp.name))
        try:
            version = (
                args.to
                or source.resolve(
                    SourceContext(
                        defn.name,
                        comp.name,
                        args.env,
                        envs[position - 1] if position else None,
                        lambda env, name=comp.name: recorded.get((env, name)),  # type: ignore[misc]
                    )
                ).version
            )
            entry = source.notes(comp.name, {args.env: (previous, version)})[args.env]
        except SourceError as exc:
            print(f"error: {comp.name}: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(to_markdown(entry, level=2))
        print()
    return 1 if failed else 0


def add_commands(sub: Any) -> None:
    notes = sub.add_parser("notes", help="release notes of a release for one environment (git sources)")
    notes.add_argument("release", help="the release's name")
    notes.add_argument("--env", required=True, help="the environment whose running version the notes start at")
    notes.add_argument("--to", help="the new version (default: what the source gives now)")
    notes.add_argument("--from", dest="since", help="the old version (default: the environment's deployment record)")
    notes.add_argument("--releases", default=str(DEFAULT_RELEASES), help="definitions folder")
    notes.set_defaults(func=cmd_notes)
