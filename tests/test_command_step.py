"""The command step: real bash processes through the standard provider's SubprocessHook."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from release_mgmt.errors import StepError
from release_mgmt.steps import STEP_ADAPTER, StepContext


def _ctx(tmp_path: Path, **kw: str) -> StepContext:
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
