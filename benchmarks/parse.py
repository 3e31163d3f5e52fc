"""Measure what parsing release definitions costs against hand-written DAG files of the same shape (issue 15).

    .venv/bin/python benchmarks/parse.py [--sizes 100 1000] [--rounds 3]

For each N, writes N equivalent releases (3 components in dependency order; dev, staging, prod; each environment
with a freeze window, a change, an approval gate; 3 deploys, 2 validations, 3 rollbacks) and N hand-written
Python DAG files of the same shape and trigger form (standard provider operators: BashOperator, ApprovalOperator,
EmptyOperator). Each contestant parses in a fresh process (Airflow and the providers imported first, as the DAG
processor has them), in interleaved rounds; ratios are taken within a round. Prints per contestant: DAGs, tasks
per DAG, ms per DAG, ms per task, serialization ms per DAG (DagSerialization.to_dict, as the DAG processor runs
it), total parse seconds, the slowest single file (what one DAG-file import must fit in: Airflow times each
file on its own), peak RSS of the one process that parsed everything; the ratios release_mgmt / hand-written;
and the time a worker needs to build one release's DAG out of N with Airflow's parsing context set. With
``--notify`` every release also routes its events (notification rules release-wide and per environment, checked
against a directory of 2,000 people): compare its ratios with a run without.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins")]  # the shard rule comes from the package itself
ENVS = ("dev", "staging", "prod")
COMPONENTS = ("db", "api", "web")

CHILD = r"""
import json, os, resource, runpy, sys, time
from pathlib import Path
import airflow.sdk  # the DAG processor has Airflow imported before it parses a file
from airflow.providers.standard.operators.bash import BashOperator  # noqa: F401
from airflow.providers.standard.operators.empty import EmptyOperator  # noqa: F401
from airflow.providers.standard.operators.hitl import ApprovalOperator  # noqa: F401
from airflow.serialization.serialized_objects import DagSerialization
from airflow.sdk import DAG

kind, target = sys.argv[1], Path(sys.argv[2])
files = sorted(target.glob("release_pipelines*.py" if kind == "release_mgmt" else "*.py"))
start = time.perf_counter()
dags, slowest = {}, 0.0
for file in files:
    began = time.perf_counter()
    found = runpy.run_path(str(file), run_name=f"unusual_prefix_{file.stem}")
    slowest = max(slowest, time.perf_counter() - began)
    dags.update({v.dag_id: v for v in found.values() if isinstance(v, DAG)})
parse = time.perf_counter() - start
start = time.perf_counter()
for dag in dags.values():
    DagSerialization.to_dict(dag)
serialize = time.perf_counter() - start
tasks = sum(len(d.tasks) for d in dags.values())
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"dags": len(dags), "tasks": tasks, "parse": parse, "serialize": serialize, "rss_mb": rss,
                  "slowest_file": slowest}))
"""

ONE_TASK = r"""
import os, sys, time
import airflow.sdk  # noqa: F401 - a worker has Airflow imported
from airflow.sdk.definitions.context import get_parsing_context
import runpy
times = []
for _ in range(2):  # the first includes importing release_mgmt; the second is the work beyond imports
    start = time.perf_counter()
    found = runpy.run_path(sys.argv[1], run_name="unusual_prefix_release_pipelines")
    times.append(time.perf_counter() - start)
    wanted = get_parsing_context().dag_id
    assert wanted in found, f"{wanted} not built"
print(times[0], times[1])
"""


def release(n: int) -> dict[str, Any]:
    """One definition of the benchmark's shape."""
    comps = []
    for i, name in enumerate(COMPONENTS):
        comps.append(
            {
                "name": name,
                "version": "1.0.0",
                **({"depends_on": [COMPONENTS[i - 1]]} if i else {}),
                "deploy": {"type": "command", "command": f"echo deploy {name} {{{{ version }}}}"},
                **({"validate": [{"type": "command", "command": f"echo check {name}"}]} if name != "db" else {}),
                "rollback": {"type": "command", "command": f"echo rollback {name} {{{{ previous_version }}}}"},
            }
        )
    freeze = {
        "name": "close",
        "kind": "freeze",
        "reason": "quarter close",
        "timezone": "UTC",
        "start": "2030-03-28 00:00",
        "end": "2030-04-02 00:00",
    }
    envs = [
        {
            "name": env,
            "gates": [{"type": "approval", "groups": ["sre"]}],
            "change": {"type": "normal", "authorizers": {"groups": ["sre"]}},
        }
        for env in ENVS
    ]
    return {
        "name": f"bench_{n:04d}",
        "owner": "bench",
        "approver_groups": {"sre": ["alice", "bob", "carol"]},
        "windows": [freeze],
        "components": comps,
        "environments": envs,
    }


HANDWRITTEN = """\
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Param, TaskGroup

COMPONENTS = ("db", "api", "web")
ENVS = ("dev", "staging", "prod")
with DAG(
    "hand_NNNN",
    schedule=None,
    params={
        **{f"version_{c}": Param("1.0.0", type="string", pattern=r"^[A-Za-z0-9._+-]+$") for c in COMPONENTS},
        "environments": Param(list(ENVS), type="array", items={"type": "string", "enum": list(ENVS)}),
        "dry_run": Param(False, type="boolean"),
    },
    tags=["release"],
) as dag:
    previous = None
    for env in ENVS:
        with TaskGroup(env):
            opened = EmptyOperator(task_id="change_open")
            gate = ApprovalOperator(task_id="gate_approval", subject=f"Approve {env}?")
            authorized = EmptyOperator(task_id="change_authorized")
            opened >> gate >> authorized
            if previous is not None:
                previous >> opened
            last, tails = authorized, []
            for comp in COMPONENTS:
                deploy = BashOperator(
                    task_id=f"deploy_{comp}", bash_command=f"echo deploy {comp} {{{{ params.version_{comp} }}}}"
                )
                last >> deploy
                tail = deploy
                if comp != "db":
                    check = BashOperator(task_id=f"validate_{comp}", bash_command=f"echo check {comp}")
                    deploy >> check
                    tail = check
                rollback = BashOperator(
                    task_id=f"rollback_{comp}", bash_command="echo rollback", trigger_rule="one_failed"
                )
                tail >> rollback
                tails.append(tail)
                last = tail
            close = EmptyOperator(task_id="change_close", trigger_rule="all_done")
            tails >> close
            previous = close
"""


def handwritten(n: int) -> str:
    """The same release written by hand with the standard provider's operators."""
    return HANDWRITTEN.replace("NNNN", f"{n:04d}")


#: with --notify: every release routes events (release-wide and in prod) through a directory of this many people
DIRECTORY_USERS = 2000


def notifying(data: dict[str, Any]) -> dict[str, Any]:
    """The release with notification rules: approvers and authorizers by mail in every environment, the team's
    chat for outcomes."""
    data["notify"] = [{"events": ["run.*", "rollback.*", "validation.failed"], "channels": ["chat"]}]
    for env in data["environments"]:
        env["notify"] = [
            {"events": ["approval.requested"], "channels": ["mail"], "to": ["approvers"]},
            {"events": ["change.awaiting_authorization"], "channels": ["mail", "chat"], "to": ["authorizers"]},
        ]
    return data


def write(base: Path, n: int, notify: bool = False) -> tuple[Path, Path]:
    import yaml

    releases, hand = base / "releases", base / "handwritten"
    releases.mkdir(parents=True)
    hand.mkdir()
    for i in range(n):
        data = notifying(release(i)) if notify else release(i)
        (releases / f"bench_{i:04d}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        (hand / f"hand_{i:04d}.py").write_text(handwritten(i))
    if notify:
        users = {f"user{i:04d}": {"email": f"user{i:04d}@example.com"} for i in range(DIRECTORY_USERS)}
        users |= {u: {"email": f"{u}@example.com", "chat": f"@{u}"} for u in ("alice", "bob", "carol")}
        channels = {"mail": {"connection": "smtp", "kind": "email"}, "chat": {"connection": "hook", "kind": "webhook"}}
        (base / "directory.yaml").write_text(yaml.safe_dump({"channels": channels, "users": users}))
    return releases, hand


def child_env(releases: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    home = Path(tempfile.mkdtemp(prefix="parse_bench_home_"))
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "RELEASE_MGMT_RELEASES_DIR": str(releases),
        "PYTHONPATH": f"{REPO / 'plugins'}:{REPO}",
        **(extra or {}),
    }


def _child(script: str, args: list[str], env: dict[str, str], what: str) -> str:
    """The last line a fresh interpreter printing ``script``'s result wrote; stop naming ``what`` when it failed."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, check=False, timeout=900
    )
    if done.returncode != 0:
        raise SystemExit(f"{what} failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


def run_child(kind: str, target: Path, releases: Path) -> dict[str, Any]:
    return dict(json.loads(_child(CHILD, [kind, str(target)], child_env(releases), kind)))


def one_task(releases: Path, n: int) -> tuple[float, float]:
    """Seconds to build the DAG of one release (the middle one) with the parsing context set, as a worker does:
    with release_mgmt's imports, and beyond them."""
    from release_mgmt.dag.shards import shard_of

    name = f"bench_{n // 2:04d}"
    shards = sorted((REPO / "dags").glob("release_pipelines*.py"))
    index = shard_of(releases / f"{name}.yaml", len(shards))  # the file of its shard, as a worker runs it
    dag_file = REPO / "dags" / (f"release_pipelines_{index}.py" if index else "release_pipelines.py")
    extra = {
        "_AIRFLOW_PARSING_CONTEXT_DAG_ID": f"release_{name}",
        "_AIRFLOW_PARSING_CONTEXT_TASK_ID": "prod.deploy_web",
    }
    first, again = _child(ONE_TASK, [str(dag_file)], child_env(releases, extra), "one task").split()
    return float(first), float(again)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--notify",
        action="store_true",
        help=f"releases with notification rules and a {DIRECTORY_USERS}-person directory",
    )
    args = parser.parse_args()
    print(f"{'N':>5} {'contestant':<12} {'DAGs':>5} {'tasks/DAG':>9} {'ms/DAG':>7} {'ms/task':>8} "
          f"{'ser ms/DAG':>10} {'parse s':>8} {'slowest file s':>14} {'RSS MB':>7}")  # fmt: skip
    for n in args.sizes:
        base = Path(tempfile.mkdtemp(prefix=f"parse_bench_{n}_"))
        releases, hand = write(base, n, notify=args.notify)
        rows: dict[str, list[dict[str, Any]]] = {"hand-written": [], "release_mgmt": []}
        ratios, serial = [], []
        for _ in range(args.rounds):
            mine = run_child("release_mgmt", REPO / "dags", releases)
            theirs = run_child("handwritten", hand, releases)
            rows["release_mgmt"].append(mine)
            rows["hand-written"].append(theirs)
            ratios.append((mine["parse"] / mine["tasks"]) / (theirs["parse"] / theirs["tasks"]))
            serial.append((mine["serialize"] / mine["dags"]) / (theirs["serialize"] / theirs["dags"]))
        for name, found in rows.items():
            first = found[0]
            parse = statistics.median(r["parse"] for r in found)
            ser = statistics.median(r["serialize"] for r in found)
            rss = max(r["rss_mb"] for r in found)
            print(
                f"{n:>5} {name:<12} {first['dags']:>5} {first['tasks'] / max(first['dags'], 1):>9.0f} "
                f"{parse * 1000 / first['dags']:>7.2f} {parse * 1000 / first['tasks']:>8.3f} "
                f"{ser * 1000 / first['dags']:>10.2f} {parse:>8.2f} "
                f"{statistics.median(r['slowest_file'] for r in found):>14.2f} {rss:>7.0f}"
            )
        starts = [one_task(releases, n) for _ in range(args.rounds)]
        print(
            f"{n:>5} ratios: parse per task {statistics.median(ratios):.2f}x, serialization per DAG "
            f"{statistics.median(serial):.2f}x; one release's DAG with the parsing context: "
            f"{statistics.median(s[0] for s in starts) * 1000:.0f} ms with release_mgmt's imports, "
            f"{statistics.median(s[1] for s in starts) * 1000:.1f} ms beyond them"
        )


if __name__ == "__main__":
    main()
