"""The ``command`` step: a local shell command, run through the standard provider's SubprocessHook."""

from __future__ import annotations

import os
import threading
from typing import ClassVar, Literal

from pydantic import Field

from release_mgmt.errors import StepError
from release_mgmt.steps.base import StepContext, StepModel, StepOutcome


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
        env = {**os.environ, **ctx.env_vars(), **self.env}
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
