"""Run a release DAG once in this process (Airflow's dag.test) and report what happened."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from release_mgmt import outcomes


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout/stderr (Airflow's task logs) to ``path`` for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("ab") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def run_once(dag_id: str, conf: dict[str, Any], log_path: Path | None = None) -> int:
    """Run ``dag_id`` with ``conf``; print one line per environment and return 0 on success."""
    from airflow.dag_processing.dagbag import DagBag

    log_path = log_path or Path(os.environ.get("AIRFLOW_HOME", ".")) / "run-once.log"
    print(f"running {dag_id} with {conf or 'default parameters'} (Airflow output: {log_path})", flush=True)
    with _output_to(log_path):
        bag = DagBag()
    dag = bag.dags.get(dag_id)
    if dag is None:
        print(f"no DAG {dag_id}; import errors: {bag.import_errors or 'none'}")
        return 2
    with _output_to(log_path):
        run = dag.test(run_conf=conf)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    environments = list(dag.task_group.children)  # task groups, in promotion order
    environments = [e for e in environments if e not in ("preflight", "summary")]
    chosen = (run.conf or {}).get("environments") or environments
    for env in environments:
        local = {t.split(".", 1)[1]: (str(s) if s else None) for t, s in states.items() if t.startswith(f"{env}.")}
        print("  " + outcomes.environment_outcome(local, env in chosen).sentence(env))
    print(f"run {run.run_id}: {run.state}")
    return 0 if str(run.state) == "success" else 1
