"""The ``command`` step: a local shell command, run through the standard provider's SubprocessHook.

The command runs with a minimal environment -- PATH, HOME, LANG, the RELEASE_* variables of the step
(trigger parameters among them, see shell.py), the worker variables the deployment lists in
``$RELEASE_MGMT_STEP_ENV`` and the step's ``env`` -- never the rest of the worker's (no ``AIRFLOW__*``
settings, no service secret, whatever the list says).
"""

from __future__ import annotations

import os
import threading
from typing import ClassVar, Literal

from pydantic import Field

from release_mgmt.errors import StepError
from release_mgmt.steps.base import StepContext, StepModel, StepOutcome

#: what a command inherits from the worker: enough to find programs and speak UTF-8, nothing else
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
#: worker variables a step never sees, even when RELEASE_MGMT_STEP_ENV lists them
NEVER = ("AIRFLOW", "_AIRFLOW", "RELEASE_MGMT_SERVICE_SECRET", "RELEASE_MGMT_CHANGE_DB", "RELEASE_MGMT_STEP_ENV")


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

    templated: ClassVar[tuple[str, ...]] = ("command", "env", "cwd")

    def describe(self) -> str:
        return f"run `{self.command}`"

    def run(self, ctx: StepContext) -> StepOutcome:
        from airflow.providers.standard.hooks.subprocess import SubprocessHook

        hook = SubprocessHook()
        env = {**minimal_environment(), **ctx.env_vars(), **self.env}
        timed_out = threading.Event()

        def _stop() -> None:
            timed_out.set()
            hook.send_sigterm()

        timer = threading.Timer(self.timeout_seconds, _stop)
        timer.start()
        try:
            result = hook.run_command(["bash", "-c", self.command], env=env, cwd=self.cwd or ctx.workdir)
        finally:
            timer.cancel()
        if timed_out.is_set():
            raise StepError(
                f"{ctx.action} of {ctx.component} in {ctx.environment}: command timed out after "
                f"{self.timeout_seconds}s (raise timeout_seconds or make the command faster)"
            )
        if result.exit_code != 0:
            raise StepError(
                f"{ctx.action} of {ctx.component} in {ctx.environment}: command exited with "
                f"code {result.exit_code}; last output line: {result.output!r}"
            )
        return StepOutcome(output=result.output.strip())
