"""A thousand releases load in Airflow's own DAG processor with its default settings (issue 15: no cliff)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import minimal_definition, write_definition

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def _definition(n: int) -> dict:
    """A release of the benchmark's shape: dev, staging, prod, each with a gate, a change and a freeze."""
    envs = [
        {
            "name": env,
            "gates": [{"type": "approval", "groups": ["sre"]}],
            "change": {"type": "normal", "authorizers": {"groups": ["sre"]}},
        }
        for env in ("dev", "staging", "prod")
    ]
    freeze = {"name": "close", "kind": "freeze", "reason": "quarter close", "timezone": "UTC",
              "start": "2030-03-28 00:00", "end": "2030-04-02 00:00"}  # fmt: skip
    return minimal_definition(
        f"many_{n:04d}", approver_groups={"sre": ["alice", "bob", "carol"]}, environments=envs, windows=[freeze]
    )


def _counts(database: Path) -> tuple[int, int]:
    """(serialized DAGs, import errors) in the metadata database."""
    with sqlite3.connect(database) as db:
        dags = db.execute("select count(*) from serialized_dag").fetchone()[0]
        errors = db.execute("select count(*) from import_error").fetchone()[0]
    return int(dags), int(errors)


def test_a_thousand_definitions_load_in_the_dag_processor(tmp_path: Path) -> None:
    """1,000 definitions, Airflow's DAG processor with its defaults (30 s import timeout per file): every release
    becomes a DAG and no file has an import error."""
    releases = tmp_path / "releases"
    for n in range(1000):
        write_definition(releases, f"many_{n:04d}.yaml", _definition(n))
    home = tmp_path / "home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))},
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "RELEASE_MGMT_RELEASES_DIR": str(releases),
    }
    subprocess.run(["airflow", "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    log = (tmp_path / "dag-processor.log").open("wb")
    processor = subprocess.Popen(["airflow", "dag-processor"], env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        counts = (0, 0)
        while time.monotonic() < deadline and counts[0] < 1000 and processor.poll() is None:
            time.sleep(5)
            counts = _counts(home / "airflow.db")
        assert counts == (1000, 0), (tmp_path / "dag-processor.log").read_text()[-3000:]
    finally:
        os.killpg(processor.pid, signal.SIGTERM)
        processor.wait(timeout=60)
