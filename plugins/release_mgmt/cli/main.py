"""``python -m release_mgmt``: check definitions, see what runs where, answer gates, read a run's evidence.

One module per command group: ``definitions`` (validate, schema, calendar), ``runs`` (status, audit, history,
locks), ``approvals`` (gates, approve, reject), ``notify`` (test a channel, list the events),
``notes`` (release notes of git-sourced components).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# validate builds and serializes each DAG as Airflow would; a release's timetable is then looked up among the
# plugins' timetables, so Airflow (imported later, on first use) must know this plugin even where no Airflow
# configuration names its folder
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(Path(__file__).resolve().parents[2]))

from release_mgmt.cli import approvals, definitions, notes, notify, runs
from release_mgmt.cli.common import DEFAULT_RELEASES
from release_mgmt.errors import ReleaseMgmtError

__all__ = ["DEFAULT_RELEASES", "main", "parser"]


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m release_mgmt",
        description="Check release definitions, see what runs where, answer approval gates, read a run's evidence.",
    )
    sub = root.add_subparsers(dest="command", required=True)
    for group in (definitions, runs, approvals, notify, notes):
        group.add_commands(sub)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ReleaseMgmtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
