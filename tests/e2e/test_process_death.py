"""Fault injection on a real multi-process Airflow (issue 16): what runs in the environment, what the deployment
record says and what the lock history shows stay true when a deploy's processes are killed.

The release's one environment has a lock; its deploy of 1.7.0 takes 120 s, every other version installs at once.
``installed`` is the environment's own log (each finished install or rollback with its time), ``current`` what it
serves. These tests SIGKILL real processes and mark runs failed through the REST API, as an operator would.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import command, minimal_definition, write_definition
from tests.processes import died_at, pid_from

pytestmark = [pytest.mark.e2e, pytest.mark.faults]
SLOW = "1.7.0"


def _definition(name: str, files: Path) -> dict[str, Any]:
    deploy = (
        f'echo $$ > {files}/deploying-"$RELEASE_VERSION"; '
        f'if [ "$RELEASE_VERSION" = {SLOW} ]; then sleep 120; fi; '
        f'echo "$RELEASE_VERSION $(date +%s.%N)" >> {files}/installed; echo "$RELEASE_VERSION" > {files}/current'
    )
    return minimal_definition(
        name,
        max_active_runs=2,
        environments=[{"name": "prod", "lock": f"{name}-prod", "lock_timeout": "10m"}],
        components=[
            {
                "name": "web",
                "version": "1.0.0",
                "current_version": command(f"cat {files}/current 2>/dev/null || true"),
                "deploy": command(deploy),
                "validate": [command(f'test "$(cat {files}/current)" = "$RELEASE_VERSION"')],
                "rollback": command(
                    f'echo "rollback-to-$RELEASE_PREVIOUS_VERSION $(date +%s.%N)" >> {files}/installed; '
                    f'echo "$RELEASE_PREVIOUS_VERSION" > {files}/current'
                ),
            }
        ],
    )


def _installed(files: Path) -> list[tuple[str, float]]:
    path = files / "installed"
    lines = path.read_text().split("\n") if path.exists() else []
    return [(what, float(when)) for what, when in (line.split() for line in lines if line.strip())]


def _recorded(airflow, release: str) -> str | None:
    """The deployment record's latest version (Airflow's asset events, through the REST API)."""
    assets = airflow.api("GET", f"/api/v2/assets?name_pattern=release_mgmt/{release}/prod/web")["assets"]
    if not assets:
        return None
    events = airflow.api("GET", f"/api/v2/assets/events?asset_id={assets[0]['id']}&order_by=-timestamp&limit=1")
    found = events["asset_events"]
    return str(found[0]["extra"]["version"]) if found else None


def _deploy_started(files: Path, version: str, seconds: float = 180) -> int:
    """The pid of the deploy's shell, once the deploy of ``version`` has started."""
    return pid_from(files / f"deploying-{version}", seconds)


@pytest.fixture
def release(airflow, tmp_path: Path) -> tuple[str, Path]:
    name = f"death{uuid.uuid4().hex[:6]}"
    files = tmp_path / "env"
    files.mkdir()
    write_definition(airflow.releases, f"{name}.yaml", _definition(name, files))
    run = airflow.trigger(f"release_{name}", "admin", {"version_web": "1.6.0"})
    assert airflow.wait_finished(f"release_{name}", run) == "success"
    assert _recorded(airflow, name) == "1.6.0"
    return name, files


def test_a_run_marked_failed_mid_deploy_never_deploys_beside_the_next(airflow, release) -> None:
    """Row 2: the README's way to free a lock (mark the run failed) while a 120 s deploy runs, then a new run.
    The killed deploy's command is stopped; the next run deploys only after it is gone; the environment and
    the record agree."""
    name, files = release
    dag_id = f"release_{name}"
    slow = airflow.trigger(dag_id, "admin", {"version_web": SLOW})
    shell = _deploy_started(files, SLOW)
    airflow.api("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{slow}", body={"state": "failed"})
    nxt = airflow.trigger(dag_id, "admin", {"version_web": "1.8.0"})
    died = died_at(shell, 60)
    assert airflow.wait_finished(dag_id, nxt, 240) == "success"
    installed = _installed(files)
    assert [v for v, _ in installed] == ["1.6.0", "1.8.0"], installed  # 1.7.0 never finished installing
    assert installed[-1][1] > died, "the next run deployed while the failed run's command still ran"
    assert (files / "current").read_text().strip() == "1.8.0"
    assert _recorded(airflow, name) == "1.8.0"
    time.sleep(3)
    assert (files / "current").read_text().strip() == "1.8.0"  # nothing orphaned finishes later


def test_a_killed_supervisor_stops_the_deploy_before_the_rollback(airflow, release) -> None:
    """Row 1: SIGKILL of the process supervising a deploy task 5 s into a 120 s deploy. The deploy's command is
    stopped at once (not 120 s later); Airflow fails the task within a minute; the rollback runs after the
    command is gone and restores 1.6.0; the record still says 1.6.0."""
    name, files = release
    dag_id = f"release_{name}"
    run = airflow.trigger(dag_id, "admin", {"version_web": SLOW})
    shell = _deploy_started(files, SLOW)
    guard = int(Path(f"/proc/{shell}/stat").read_text().rsplit(")", 1)[1].split()[1])
    argv = Path(f"/proc/{guard}/cmdline").read_bytes().split(b"\0")
    assert any(a.endswith(b"guard.py") for a in argv), argv
    supervisor = int(argv[argv.index(b"--watch") + 1].split(b",")[1])
    time.sleep(5)
    killed_at = time.time()
    os.kill(supervisor, signal.SIGKILL)
    died = died_at(shell, 20)
    assert died - killed_at < 15
    started = time.monotonic()
    assert airflow.wait_finished(dag_id, run, 240) == "failed"
    assert time.monotonic() - started < 150
    got = airflow.states(dag_id, run)
    assert got["prod.deploy_web"] == "failed"
    assert got["prod.rollback_web"] == "success"
    installed = _installed(files)
    assert [v for v, _ in installed] == ["1.6.0", "rollback-to-1.6.0"], installed
    assert installed[-1][1] > died
    assert (files / "current").read_text().strip() == "1.6.0"
    assert _recorded(airflow, name) == "1.6.0"


@pytest.fixture(scope="module")
def own_airflow(tmp_path_factory: pytest.TempPathFactory):
    """An Airflow of this module's own: its scheduler is killed, which the session's Airflow must not see."""
    from tools.local_airflow import LocalAirflow

    base = tmp_path_factory.mktemp("own_airflow")
    (base / "releases").mkdir()
    server = LocalAirflow(base / "home", base / "releases").start()
    try:
        yield server
    finally:
        server.stop()


def test_a_killed_scheduler_tree_is_noticed_within_a_minute(own_airflow, tmp_path: Path) -> None:
    """Row 9: SIGKILL of the scheduler's whole process group (its executor's workers and the deploy's supervisor
    with it) 5 s into a 120 s deploy, then the scheduler is started again. The deploy's command is stopped at
    once; with deploy/airflow.env's timeouts Airflow deals with the orphaned deploy within about a minute (it
    resets it and runs it again: a fresh try deploys from the start), not after Airflow's 5; the killed try's
    command never finishes, and the environment and the record agree at the end."""
    airflow = own_airflow
    name = "schedkill"
    files = tmp_path / "env"
    files.mkdir()
    write_definition(airflow.releases, f"{name}.yaml", _definition(name, files))
    dag_id = f"release_{name}"
    first = airflow.trigger(dag_id, "admin", {"version_web": "1.6.0"})
    assert airflow.wait_finished(dag_id, first) == "success"
    run = airflow.trigger(dag_id, "admin", {"version_web": SLOW})
    shell = _deploy_started(files, SLOW)
    (files / f"deploying-{SLOW}").unlink()
    time.sleep(5)
    airflow.kill("scheduler")
    killed = time.monotonic()
    died_at(shell, 20)
    airflow.restart("scheduler")
    deploy = f"/api/v2/dags/{dag_id}/dagRuns/{run}/taskInstances/prod.deploy_web"

    def dealt_with() -> bool:
        ti = airflow.api("GET", deploy)
        return bool(ti["try_number"] > 1 or ti["state"] == "failed")

    airflow.wait_for(dealt_with, 240, "Airflow to deal with the orphaned deploy")
    noticed = time.monotonic() - killed
    assert noticed < 90, f"a dead deploy stayed running {noticed:.0f}s"
    state = airflow.wait_finished(dag_id, run, 400)
    installed = [v for v, _ in _installed(files)]
    assert installed.count(SLOW) == (1 if state == "success" else 0), installed  # the killed try never finished
    current = (files / "current").read_text().strip()
    assert current == _recorded(airflow, name) == (SLOW if state == "success" else "1.6.0")
    print(f"Airflow dealt with the orphaned deploy {noticed:.0f}s after the scheduler was killed; run {state}")
