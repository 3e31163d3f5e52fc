"""The command step: real bash processes through the standard provider's SubprocessHook."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from release_mgmt.errors import StepError
from release_mgmt.steps import STEP_ADAPTER, StepContext


def _ctx(tmp_path: Path, **kw: Any) -> StepContext:
    return StepContext(
        release="shop",
        environment="dev",
        component="api",
        version="1.2.3",
        action="deploy",
        workdir=str(tmp_path),
        **kw,
    )


def test_runs_in_workdir_with_release_variables(tmp_path: Path) -> None:
    """The command runs in the definition's folder with RELEASE_* variables and its own env."""
    step = STEP_ADAPTER.validate_python(
        {
            "type": "command",
            "env": {"EXTRA": "x"},
            "command": 'echo "$RELEASE_NAME $RELEASE_ENVIRONMENT $RELEASE_COMPONENT $RELEASE_VERSION $EXTRA" > out;'
            " cat out",
        }
    )
    outcome = step.run(_ctx(tmp_path))
    assert outcome.output == "shop dev api 1.2.3 x"
    assert (tmp_path / "out").exists()


def test_nonzero_exit_fails_with_code_and_last_line(tmp_path: Path) -> None:
    """A failing command names the action, component, environment, exit code and last output."""
    step = STEP_ADAPTER.validate_python({"type": "command", "command": "echo boom; exit 3"})
    with pytest.raises(StepError, match=r"deploy of api in dev: command exited with code 3; last output line: 'boom'"):
        step.run(_ctx(tmp_path))


def test_timeout_stops_the_command(tmp_path: Path) -> None:
    """A command past timeout_seconds is terminated and the step fails saying so."""
    step = STEP_ADAPTER.validate_python({"type": "command", "command": "sleep 30", "timeout_seconds": 1})
    started = time.monotonic()
    with pytest.raises(StepError, match="timed out after 1s"):
        step.run(_ctx(tmp_path))
    assert time.monotonic() - started < 15


def test_worker_variables_reach_a_step_only_when_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step sees a worker variable only when RELEASE_MGMT_STEP_ENV lists it, and never Airflow's settings or the
    service's secret, even when listed."""
    monkeypatch.setenv("SAMPLE_ROOT", "/srv/envs")
    monkeypatch.setenv("UNLISTED", "nope")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "jwt")
    monkeypatch.setenv("RELEASE_MGMT_SERVICE_SECRET", "svc")
    monkeypatch.setenv(
        "RELEASE_MGMT_STEP_ENV", "SAMPLE_ROOT, AIRFLOW__API_AUTH__JWT_SECRET,RELEASE_MGMT_SERVICE_SECRET"
    )
    step = STEP_ADAPTER.validate_python({"type": "command", "command": "env | sort > env.txt"})
    step.run(_ctx(tmp_path))
    names = {line.split("=", 1)[0] for line in (tmp_path / "env.txt").read_text().splitlines() if "=" in line}
    assert "SAMPLE_ROOT" in names
    assert not names & {
        "UNLISTED",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "RELEASE_MGMT_SERVICE_SECRET",
        "RELEASE_MGMT_STEP_ENV",
    }
    assert "RELEASE_NAME" in names
