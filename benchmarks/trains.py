"""Measure what the train DAG file costs to parse against one release shard file, in the same folder.

    .venv/bin/python benchmarks/trains.py [--sizes 300 1000] [--members 3] [--rounds 3]

For each N, writes N releases (benchmarks/parse.py's shape) and one train of ``--members`` of them; then, each in
a fresh process (Airflow imported first, as the DAG processor has it), parses ``dags/release_trains.py`` and
``dags/release_pipelines.py`` (one shard: about N/8 releases) and prints both times and their ratio. The train
file reads every release to check its members against them, so it grows with N like a shard file does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "benchmarks")]

from parse import ENVS, release  # noqa: E402 - the same release shape as benchmarks/parse.py

CHILD = r"""
import runpy, sys, time
import airflow.sdk  # noqa: F401 - the DAG processor has Airflow imported before it parses a file
started = time.perf_counter()
found = runpy.run_path(sys.argv[1])
dags = [k for k, v in found.items() if type(v).__name__ == "DAG"]
print(f"{time.perf_counter() - started:.4f} {len(dags)}")
"""


def parse_seconds(dag_file: Path, releases: Path, trains: Path) -> tuple[float, int]:
    env = {**os.environ, "RELEASE_MGMT_RELEASES_DIR": str(releases), "RELEASE_MGMT_TRAINS_DIR": str(trains)}
    env["PYTHONPATH"] = str(REPO / "plugins")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(dag_file)], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), int(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 1000])
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench-trains-") as tmp:
            base = Path(tmp)
            (base / "releases").mkdir()
            (base / "trains").mkdir()
            for i in range(n):
                (base / "releases" / f"r{i}.yaml").write_text(yaml.safe_dump(release(i)))
            members = [{"release": release(i)["name"]} for i in range(args.members)]
            train = {"name": "bench", "owner": "o", "members": members, "environments": [{"name": e} for e in ENVS]}
            (base / "trains" / "bench.yaml").write_text(yaml.safe_dump(train))
            trains, shard, counts = [], [], (0, 0)
            for _ in range(args.rounds):  # interleaved, so drift hits both alike
                t, dags_t = parse_seconds(REPO / "dags/release_trains.py", base / "releases", base / "trains")
                s, dags_s = parse_seconds(REPO / "dags/release_pipelines.py", base / "releases", base / "trains")
                trains.append(t)
                shard.append(s)
                counts = (dags_t, dags_s)
            t, s = statistics.median(trains), statistics.median(shard)
            print(
                f"N={n}: train file {t:.2f}s ({counts[0]} DAG), one shard file {s:.2f}s ({counts[1]} DAGs): "
                f"ratio train/shard {t / s:.2f}"
            )


if __name__ == "__main__":
    main()
