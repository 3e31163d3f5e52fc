"""Load on a real multi-process Airflow (issue 16): many runs of one release through one environment lock.

    .venv/bin/python benchmarks/load.py [--runs 20] [--active 5] [--deploy-seconds 2]

Starts tools/local_airflow.py (API server, scheduler, DAG processor, triggerer; SQLite, LocalExecutor, the
settings of deploy/airflow.env) with one release whose prod has a lock and ``max_active_runs`` runs at once,
triggers ``--runs`` runs together, and waits for all of them. Each deploy writes its start and end to a journal.
Prints: runs and their final states, wall time, the baseline (runs x deploy seconds: the deploys alone, one after
another, which the lock imposes) and the ratio; deploys that overlapped (must be 0); locks left held (must be 0);
and the lock hand-over latency -- from a holder's release to the next holder's grant, from the lock's history --
median and max, against the lock's median hold time. Numbers, not pass/fail.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "plugins")]


def definition(journal: Path, active: int, deploy_seconds: float) -> dict[str, object]:
    deploy = (
        f'echo "start $RELEASE_RUN_ID $(date +%s.%N)" >> {journal}; sleep {deploy_seconds}; '
        f'echo "end $RELEASE_RUN_ID $(date +%s.%N)" >> {journal}'
    )
    return {
        "name": "loadtest",
        "owner": "bench",
        "max_active_runs": active,
        "components": [
            {
                "name": "web",
                "version": "1.0.0",
                "deploy": {"type": "command", "command": deploy},
                "validate": [{"type": "command", "command": "true"}],
                "rollback": {"type": "command", "command": "true"},
            }
        ],
        "environments": [{"name": "prod", "lock": "loadtest-prod", "lock_timeout": "1h"}],
    }


def intervals(journal: Path) -> list[tuple[float, float, str]]:
    starts: dict[str, float] = {}
    spans = []
    for line in journal.read_text().splitlines():
        what, run, when = line.split()
        if what == "start":
            starts[run] = float(when)
        else:
            spans.append((starts.pop(run), float(when), run))
    return sorted(spans)


def trigger(airflow: object, dag: str, version: str) -> str:
    """Trigger one run; Airflow's SQLite answers a burst of triggers with an occasional "database is locked"."""
    for attempt in range(10):
        try:
            return str(airflow.trigger(dag, "admin", {"version_web": version}))  # type: ignore[attr-defined]
        except RuntimeError:
            if attempt == 9:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


def moment(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--active", type=int, default=5)
    parser.add_argument("--deploy-seconds", type=float, default=2.0)
    args = parser.parse_args()

    from tools.local_airflow import LocalAirflow

    base = Path(tempfile.mkdtemp(prefix="load_bench_"))
    (base / "releases").mkdir()
    journal = base / "journal"
    journal.touch()
    releases = base / "releases" / "loadtest.yaml"
    releases.write_text(yaml.safe_dump(definition(journal, args.active, args.deploy_seconds), sort_keys=False))
    airflow = LocalAirflow(base / "home", base / "releases").start()
    try:
        dag = "release_loadtest"
        airflow.wait_for(lambda: airflow.dag_ready(dag), 180, "the release's DAG")
        started = time.monotonic()
        # one version for all: runs that overtake each other in the lock's line would otherwise refuse to put an
        # older version back (the superseded rule), which is a refusal, not load
        runs = [trigger(airflow, dag, "1.0.1") for _ in range(args.runs)]
        states = [airflow.wait_finished(dag, run, 60 * args.runs) for run in runs]
        wall = time.monotonic() - started
        spans = intervals(journal)
        overlaps = sum(1 for (_, end, _), (start, _, _) in itertools.pairwise(spans) if start < end)
        lock = airflow.api("GET", "/change-service/api/release_mgmt/locks?lock=loadtest-prod")["result"]
        held = sorted((h for h in lock["history"] if h["granted_on"]), key=lambda h: h["granted_on"])
        handovers = [
            moment(nxt["granted_on"]) - moment(prev["released_on"])
            for prev, nxt in itertools.pairwise(held)
            if prev["released_on"] and moment(nxt["requested_on"]) < moment(prev["released_on"])
        ]
        holds = [moment(h["released_on"]) - moment(h["granted_on"]) for h in held if h["released_on"]]
    finally:
        airflow.stop()
    baseline = args.runs * args.deploy_seconds
    print(f"runs: {len(runs)} ({', '.join(f'{s}: {states.count(s)}' for s in sorted(set(states)))})")
    print(
        f"wall time: {wall:.1f} s; baseline (deploys one after another): {baseline:.1f} s; ratio {wall / baseline:.2f}"
    )
    print(f"deploys: {len(spans)}; overlapping deploys: {overlaps}; lock left held: {lock['holder'] is not None}")
    if handovers:
        median, worst = statistics.median(handovers), max(handovers)
        hold = statistics.median(holds)
        print(
            f"lock hand-over (release -> next grant, {len(handovers)} with a waiter): median {median * 1000:.0f} ms, "
            f"max {worst * 1000:.0f} ms; median hold {hold:.1f} s; hand-over / hold {median / hold:.3f}"
        )


if __name__ == "__main__":
    main()
