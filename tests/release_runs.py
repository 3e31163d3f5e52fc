"""Release-run fixtures and helpers (registered for every test by tests/conftest.py): the sample release on free
loopback ports in a temporary folder, a session-wide multi-process Airflow, audit-line checks."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from release_mgmt.dag.builder import build_release_dags
from tests.helpers import free_port

REPO = Path(__file__).resolve().parents[1]

_numbers = itertools.count(1)


@dataclass
class SampleRelease:
    """The sample release wired to this test's ports and folders."""

    folder: Path
    root: Path
    ports: dict[str, int]
    ctl: Path

    name: str

    def dag(self) -> Any:
        dag_id = f"release_{self.name}"
        return build_release_dags(self.folder, only=dag_id)[dag_id]

    def health(self, env: str) -> dict[str, Any] | None:
        """The /health answer of ``env``'s service, or None when nothing listens."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[env]}/health", timeout=2) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())
        except OSError:
            return None

    def version(self, env: str) -> str | None:
        answer = self.health(env)
        return answer.get("version") if answer and answer.get("status") == "ok" else None


@pytest.fixture
def sample(tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path):
    """The sample release copied to a temporary folder with free ports; its services stopped afterwards."""
    folder = tmp_path / "releases"
    folder.mkdir()
    (tmp_path / "sample_service").symlink_to(repo / "include/sample_service")
    data = yaml.safe_load((repo / "include/releases/sample_webshop.yaml").read_text())
    # a release name of its own: deployment records live in the session's Airflow database
    data["name"] = f"sample_{next(_numbers)}"
    # dag.test() cannot answer approval requests: these tests run the sample without its prod gate and change
    # (test_approval_gates.py runs it with the gate on a real Airflow)
    for env in data["environments"]:
        env.pop("gates", None)
        env.pop("change", None)  # the built-in change service runs inside Airflow's API server
    ports = {}
    for env in data["environments"]:
        ports[env["name"]] = env["variables"]["port"] = free_port()
    (folder / "sample_webshop.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    root = tmp_path / "environments"
    monkeypatch.setenv("RELEASE_MGMT_SAMPLE_ROOT", str(root))
    monkeypatch.setenv("RELEASE_MGMT_STEP_ENV", "RELEASE_MGMT_SAMPLE_ROOT")  # steps see only listed variables
    use_releases(folder, monkeypatch)
    release = SampleRelease(folder, root, ports, repo / "include/sample_service/ctl.py", data["name"])
    yield release
    stop_sample(root, ports)


def gated_sample(root: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The sample definition as written (prod gate and change included) with its environments' folders under
    ``root`` and free loopback ports: (definition, environment -> port). For a real multi-process Airflow."""
    text = (REPO / "include/releases/sample_webshop.yaml").read_text()
    data = yaml.safe_load(text.replace("${RELEASE_MGMT_SAMPLE_ROOT:-/tmp/release_mgmt_sample}", str(root)))
    ports = {env["name"]: free_port() for env in data["environments"]}
    for env in data["environments"]:
        env["variables"]["port"] = ports[env["name"]]
    return data, ports


def stop_sample(root: Path, environments: Iterable[str]) -> None:
    """Stop the sample service of each environment under ``root`` that was started."""
    for env in environments:
        if (root / env).exists():
            subprocess.run(
                [sys.executable, str(REPO / "include/sample_service/ctl.py"), "stop", "--root", str(root / env)],
                check=False,
                capture_output=True,
                timeout=30,
            )


def served_version(port: int) -> str | None:
    """The version the sample service on ``port`` reports, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return json.loads(resp.read()).get("version")
    except OSError:
        return None


def use_releases(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the repository's DAG file at ``folder``: dag.test() syncs the DAGs folder to the database
    and needs the tested DAG to be found there."""
    monkeypatch.setenv("RELEASE_MGMT_RELEASES_DIR", str(folder))


def states(run: Any) -> dict[str, str | None]:
    """Task id -> state of a finished dag run."""
    return {ti.task_id: (str(ti.state) if ti.state else None) for ti in run.get_task_instances()}


def audit_records(text: str) -> list[dict[str, Any]]:
    """Every audit record in captured output."""
    from release_mgmt.records.audit import parse_line

    return [r for r in (parse_line(line) for line in text.splitlines()) if r is not None]


@pytest.fixture(scope="session")
def airflow(tmp_path_factory: pytest.TempPathFactory):
    """A real multi-process Airflow (API server, scheduler, DAG processor) for the session.

    Tests write release definitions into ``airflow.releases``; the DAG processor picks them up.
    """
    from tools.local_airflow import LocalAirflow

    base = tmp_path_factory.mktemp("airflow")
    (base / "releases").mkdir()
    (base / "sample_service").symlink_to(REPO / "include/sample_service")  # for copies of the sample
    server = LocalAirflow(base / "home", base / "releases").start()
    try:
        yield server
    finally:
        server.stop()


MANDATORY = (
    "event",
    "release",
    "run_id",
    "environment",
    "component",
    "version",
    "actor",
    "change",
    "outcome",
    "time",
    "details",
)
ONCE = (
    "run.planned",
    "run.finished",
    "environment.entered",
    "environment.finished",
    "deploy.started",
    "deploy.finished",
    "validate.started",
    "validate.finished",
    "rollback.started",
    "rollback.finished",
    "rollback.skipped",
    "deployment.recorded",
    "gate.requested",
    "gate.decision",
    "change.opened",
    "change.closed",
)


def audit_problems(records: list[dict[str, Any]]) -> list[str]:
    """Audit records missing a mandatory field, or once-per-occurrence events seen twice for one target."""
    problems = [
        f"{r.get('event')}: missing {sorted(set(MANDATORY) - set(r))}" for r in records if set(MANDATORY) - set(r)
    ]
    seen: dict[tuple[str, str, str], int] = {}
    for r in records:
        if r.get("event") in ONCE:
            key = (r["event"], r.get("environment", ""), r.get("component", ""))
            seen[key] = seen.get(key, 0) + 1
    problems += [f"{key} appears {n} times" for key, n in seen.items() if n > 1]
    step_events = [r for r in records if str(r.get("event", "")).split(".")[0] in ("deploy", "validate", "rollback")]
    problems += [
        f"{r['event']} without environment/component/version"
        for r in step_events
        if not (r.get("environment") and r.get("component") and r.get("version"))
    ]
    return problems


def release_mgmt_cli(airflow, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m release_mgmt ...` as ``user``, with credentials from the environment."""
    env = {
        **os.environ,
        "AIRFLOW_API_URL": airflow.url,
        "AIRFLOW_USERNAME": user,
        "AIRFLOW_PASSWORD": airflow.passwords[user],
    }
    return subprocess.run(
        [sys.executable, "-m", "release_mgmt", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
