"""The ``command`` step: a local shell command, run through the standard provider's SubprocessHook.

The command runs with a minimal environment -- PATH, HOME, LANG, the RELEASE_* variables of the step
(trigger parameters among them, see shell.py), the worker variables the deployment lists in
``$RELEASE_MGMT_STEP_ENV`` and the step's ``env`` -- never the rest of the worker's (no ``AIRFLOW__*``
settings, no service secret, whatever the list says).
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from release_mgmt.errors import StepError
from release_mgmt.steps.base import StepContext, StepModel, StepOutcome

#: what a command inherits from the worker: enough to find programs and speak UTF-8, nothing else
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
#: worker variables a step never sees, even when RELEASE_MGMT_STEP_ENV lists them
NEVER = ("AIRFLOW", "_AIRFLOW", "RELEASE_MGMT_SERVICE_SECRET", "RELEASE_MGMT_CHANGE_DB", "RELEASE_MGMT_STEP_ENV")
#: the guard the command runs under (steps/guard.py, run by path: standard library only)
GUARD = str(Path(__file__).with_name("guard.py"))


def minimal_environment() -> dict[str, str]:
    """The worker's variables a step's process may see: INHERITED and those named in $RELEASE_MGMT_STEP_ENV
    (comma-separated; the deployment's choice, e.g. where the sample's environments live)."""
    listed = [n.strip() for n in os.environ.get("RELEASE_MGMT_STEP_ENV", "").split(",") if n.strip()]
    allowed = [n for n in (*INHERITED, *listed) if not n.upper().startswith(NEVER)]
    env = {name: os.environ[name] for name in allowed if name in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    return env


class CommandStep(StepModel):
    """Run ``command`` with bash; a non-zero exit or the time limit fails the step."""

    type: Literal["command"]
    command: str = Field(min_length=1, description="Shell command (bash), Jinja-templated.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    cwd: str | None = Field(default=None, description="Working directory; default: the definition file's folder.")
    timeout_seconds: int = Field(default=600, gt=0, le=86400, description="Time limit of the command.")
    stop_grace_seconds: int = Field(
        default=10, ge=1, le=120, description="After SIGTERM, seconds before the command's processes get SIGKILL."
    )

    templated: ClassVar[tuple[str, ...]] = ("command", "env", "cwd")

    def describe(self) -> str:
        return f"run `{self.command}`"

    def argv(self) -> list[str]:
        """The guard (stops the command's whole process group when this task's process or its supervisor
        goes away, or on SIGTERM), then bash running the command."""
        watch = f"{os.getpid()},{os.getppid()}"
        grace = str(self.stop_grace_seconds)
        return [sys.executable, "-I", GUARD, "--watch", watch, "--grace", grace, "--", "bash", "-c", self.command]

    def run(self, ctx: StepContext) -> StepOutcome:
        from airflow.providers.standard.hooks.subprocess import SubprocessHook

        hook = SubprocessHook()
        env = {**minimal_environment(), **ctx.env_vars(), **self.env}
        timed_out = threading.Event()

        def _timeout() -> None:
            timed_out.set()
            hook.send_sigterm()

        def _stop() -> str:
            process = hook.sub_process
            if process is None or process.poll() is not None:
                return "had already ended"
            hook.send_sigterm()
            try:  # on_kill has ~5 s before Airflow's SIGKILL; the guard finishes the stop on its own
                process.wait(timeout=min(4.0, self.stop_grace_seconds + 1.0))
            except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: the guard goes on escalating
                return f"SIGTERM sent; the guard sends SIGKILL to what is left after {self.stop_grace_seconds}s"
            return f"stopped (exit code {process.returncode})"

        timer = threading.Timer(self.timeout_seconds, _timeout)
        timer.start()
        try:
            with ctx.stopper.while_running(f"command of {ctx.action} {ctx.component}", _stop):
                result = hook.run_command(self.argv(), env=env, cwd=self.cwd or ctx.workdir)
        finally:
            timer.cancel()
        where = f"{ctx.action} of {ctx.component} in {ctx.environment}"
        if timed_out.is_set():
            raise StepError(
                f"{where}: command timed out after {self.timeout_seconds}s and was stopped "
                "(raise timeout_seconds or make the command faster)"
            )
        if ctx.stopper.stopped.is_set():
            raise StepError(f"{where}: command stopped because the task was killed (exit code {result.exit_code})")
        if result.exit_code != 0:
            last = result.output
            raise StepError(f"{where}: command exited with code {result.exit_code}; last output line: {last!r}")
        return StepOutcome(output=result.output.strip())
