"""A command step never outlives its task (issue 16, rows 1 and 2): real processes killed the way an operator's
bad night kills them -- the task's process with SIGKILL, its supervisor with SIGKILL, the task's on_kill --
and the command's whole process group is gone within the grace, including children that ignore SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from release_mgmt.errors import StepError
from release_mgmt.steps import STEP_ADAPTER, StepContext
from tests.processes import alive, gone_within, pid_from

pytestmark = pytest.mark.faults

#: a deploy that starts a child (in its process group), records both pids, and would finish after 60 s
SLOW_DEPLOY = "sleep 60 & echo $! > child.pid; echo $$ > shell.pid; wait; echo finished > finished"


def _runner_script(tmp_path: Path, command: str, grace: int = 2) -> str:
    """A task process: runs the command step (through the SubprocessHook and the guard) and prints its outcome."""
    return textwrap.dedent(
        f"""
        from release_mgmt.steps import STEP_ADAPTER, StepContext
        step = STEP_ADAPTER.validate_python(
            {{"type": "command", "command": {command!r}, "stop_grace_seconds": {grace}}}
        )
        ctx = StepContext(release="shop", environment="prod", component="web", version="1.7.0",
                          action="deploy", workdir={str(tmp_path)!r})
        print(step.run(ctx).output)
        """
    )


def test_a_killed_task_process_takes_its_command_down(tmp_path: Path) -> None:
    """SIGKILL of the process running the step (no on_kill can run): the guard sees its parent die and stops the
    command's whole group; the 60 s deploy never finishes behind the rollback's back."""
    task = subprocess.Popen([sys.executable, "-c", _runner_script(tmp_path, SLOW_DEPLOY)])
    shell, child = pid_from(tmp_path / "shell.pid", 15), pid_from(tmp_path / "child.pid", 15)
    task.kill()
    task.wait()
    assert gone_within([shell, child], 5), "the command outlived its task's process"
    time.sleep(0.5)
    assert not (tmp_path / "finished").exists()


def test_a_killed_supervisor_takes_the_command_down_while_the_task_process_lives(tmp_path: Path) -> None:
    """SIGKILL of the task's supervisor leaves the task process running (Airflow's task runner does not notice):
    the guard watches the supervisor too, so the command stops although its direct parent is alive."""
    supervisor_code = textwrap.dedent(
        f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", {_runner_script(tmp_path, SLOW_DEPLOY)!r}])
        time.sleep(120)
        """
    )
    supervisor = subprocess.Popen([sys.executable, "-c", supervisor_code])
    shell, child = pid_from(tmp_path / "shell.pid", 15), pid_from(tmp_path / "child.pid", 15)
    supervisor.kill()
    supervisor.wait()
    assert gone_within([shell, child], 5), "the command outlived the task's supervisor"
    assert not (tmp_path / "finished").exists()


def test_on_kill_stops_the_command_and_the_step_says_so(tmp_path: Path) -> None:
    """The operator's on_kill calls the step's stopper: the group is stopped, the step fails naming why."""
    step = STEP_ADAPTER.validate_python({"type": "command", "command": SLOW_DEPLOY, "stop_grace_seconds": 2})
    ctx = StepContext(
        release="shop", environment="prod", component="web", version="1.7.0", action="deploy", workdir=str(tmp_path)
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            step.run(ctx)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            failure.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    shell, child = pid_from(tmp_path / "shell.pid", 15), pid_from(tmp_path / "child.pid", 15)
    said = ctx.stopper.stop()
    worker.join(15)
    assert said
    assert "command of deploy web: stopped" in said[0], said
    assert not alive(shell)
    assert not alive(child)
    assert failure
    assert isinstance(failure[0], StepError)
    assert "stopped because the task was killed" in str(failure[0])
    assert not (tmp_path / "finished").exists()


def test_a_command_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    """A command that traps SIGTERM (and its child that does too) gets SIGKILL once the grace has passed."""
    stubborn = "trap '' TERM; (trap '' TERM; sleep 60) & echo $! > child.pid; echo $$ > shell.pid; wait; wait"
    task = subprocess.Popen([sys.executable, "-c", _runner_script(tmp_path, stubborn, grace=3)])
    shell, child = pid_from(tmp_path / "shell.pid", 15), pid_from(tmp_path / "child.pid", 15)
    task.send_signal(signal.SIGKILL)
    task.wait()
    time.sleep(1)
    assert alive(shell), "SIGTERM was not ignored: this test would not reach the SIGKILL"
    assert alive(child), "SIGTERM was not ignored: this test would not reach the SIGKILL"
    assert gone_within([shell, child], 8), "SIGTERM-ignoring processes survived the grace"


def test_a_command_ending_normally_leaves_what_it_started_in_the_background(tmp_path: Path) -> None:
    """Only a stop ends the group: a deploy that starts a service with nohup keeps it when it succeeds."""
    step = STEP_ADAPTER.validate_python(
        {"type": "command", "command": "nohup sleep 30 >/dev/null 2>&1 & echo $! > service.pid; echo up"}
    )
    ctx = StepContext(
        release="shop", environment="prod", component="web", version="1.7.0", action="deploy", workdir=str(tmp_path)
    )
    assert step.run(ctx).output == "up"
    service = pid_from(tmp_path / "service.pid", 15)
    try:
        time.sleep(0.5)
        assert alive(service)
    finally:
        os.kill(service, signal.SIGKILL)


@pytest.mark.parametrize("grace", [0, 121])
def test_stop_grace_is_bounded(grace: int) -> None:
    """A grace of 0 (no chance to clean up) or over two minutes (longer than any fence holds) is refused."""
    with pytest.raises(ValueError, match="stop_grace_seconds"):
        STEP_ADAPTER.validate_python({"type": "command", "command": "true", "stop_grace_seconds": grace})
