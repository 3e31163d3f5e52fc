"""The ``ssh`` step: a command on every host of an environment, in rolling batches, through the SSH provider.

Hosts are Airflow SSH connections (host, port, login, key or password live there, never in the
definition). Each batch runs in parallel; the first batch with a failing host stops the step and
names the host. Output is streamed to the task log by the provider's SSHHook.

A step never outlives its task: the remote command runs on a pseudo-terminal, so when the connection drops (the
task's process killed, the worker gone) or the task is killed (``on_kill`` closes the connections) the remote
shell gets a hang-up (SIGHUP) and ends; ``stop_command``, when given, then runs on each host where the command
was running (over a new connection), e.g. to stop a deploy agent that ignores hang-ups.
"""

from __future__ import annotations

import shlex
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Literal

from pydantic import Field

from release_mgmt.errors import StepError
from release_mgmt.steps.base import StepContext, StepModel, StepOutcome


class SSHStep(StepModel):
    """Run ``command`` over SSH on each connection, ``batch_size`` hosts at a time."""

    type: Literal["ssh"]
    connections: tuple[str, ...] = Field(
        min_length=1, description="Airflow SSH connection ids, one per host (templated, e.g. web_{{ environment }}_1)."
    )
    command: str = Field(min_length=1, description="Remote shell command, Jinja-templated.")
    batch_size: int = Field(default=1, ge=1, description="Hosts changed at the same time (rolling batches).")
    timeout_seconds: int = Field(
        default=600, gt=0, le=86400, description="Seconds without output after which the command counts as hung."
    )
    connect_attempts: int = Field(default=3, ge=1, le=10, description="Connection attempts per host.")
    stop_command: str | None = Field(
        default=None,
        min_length=1,
        description="Run on each host where the command was running when the task is killed (after the hang-up), "
        "Jinja-templated; e.g. systemctl stop deploy-agent.",
    )

    templated: ClassVar[tuple[str, ...]] = ("connections", "command", "stop_command")

    def describe(self) -> str:
        return f"run `{self.command}` over ssh on {', '.join(self.connections)} ({self.batch_size} at a time)"

    def _remote_command(self, ctx: StepContext, conn_id: str, command: str = "") -> str:
        exports = {**ctx.env_vars(), "RELEASE_TARGET": conn_id}
        prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in exports.items())
        return f"export {prefix}; {command or self.command}"

    def _hang_up(self, client: Any, ctx: StepContext, conn_id: str, target: str) -> str:
        """Close the connection (the remote command gets SIGHUP through its terminal), then run ``stop_command``."""
        client.close()
        if not self.stop_command:
            return "connection closed: the remote command got a hang-up"
        from airflow.providers.ssh.hooks.ssh import SSHHook

        try:
            hook = SSHHook(ssh_conn_id=conn_id, cmd_timeout=30, conn_retry_attempts=1)
            with hook.get_conn() as stopper:
                status, _, _ = hook.exec_ssh_client_command(
                    stopper, self._remote_command(ctx, conn_id, self.stop_command), get_pty=False, environment=None
                )
        except Exception as exc:  # noqa: BLE001 - reported, never raised from on_kill
            return f"connection closed; stop_command could not run on {target}: {_explain(exc)}"
        if status != 0:
            return f"connection closed; stop_command FAILED on {target} (exit code {status}): check the host by hand"
        return f"connection closed; stop_command ran on {target}"

    def _run_on(self, ctx: StepContext, conn_id: str) -> str | None:
        """Run on one host; None on success, else why it failed (naming the host)."""
        from airflow.providers.ssh.hooks.ssh import SSHHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        target = conn_id
        try:
            hook = SSHHook(
                ssh_conn_id=conn_id, cmd_timeout=self.timeout_seconds, conn_retry_attempts=self.connect_attempts
            )
            target = f"{conn_id} ({hook.username}@{hook.remote_host}:{hook.port or 22})"
            with (
                hook.get_conn() as client,
                ctx.stopper.while_running(
                    f"ssh command on {target}", lambda: self._hang_up(client, ctx, conn_id, target)
                ),
            ):
                ctx.log.info("[%s] running", target)
                status, _, _ = hook.exec_ssh_client_command(
                    client, self._remote_command(ctx, conn_id), get_pty=True, environment=None
                )
        except AirflowNotFoundException:
            return f"{conn_id}: no such Airflow connection; add an SSH connection with this id"
        except Exception as exc:  # noqa: BLE001 - paramiko, socket and timeout errors all end this host
            if ctx.stopper.stopped.is_set():
                return f"{target}: stopped because the task was killed"
            return f"{target}: {_explain(exc)}"
        ctx.log.info("[%s] exit code %s", target, status)
        if status != 0 and ctx.stopper.stopped.is_set():
            return f"{target}: stopped because the task was killed"
        return None if status == 0 else f"{target}: command exited with code {status}"

    def run(self, ctx: StepContext) -> StepOutcome:
        hosts = list(self.connections)
        done: list[str] = []
        for start in range(0, len(hosts), self.batch_size):
            batch = hosts[start : start + self.batch_size]
            ctx.log.info("batch %d: %s", start // self.batch_size + 1, ", ".join(batch))
            with ThreadPoolExecutor(max_workers=len(batch)) as pool:
                failures = [f for f in pool.map(lambda c: self._run_on(ctx, c), batch) if f]
            if failures:
                untouched = hosts[start + self.batch_size :]
                raise StepError(
                    f"{ctx.action} of {ctx.component} in {ctx.environment} over ssh failed on "
                    + "; ".join(failures)
                    + (f". Not started on: {', '.join(untouched)}" if untouched else "")
                )
            done.extend(batch)
        return StepOutcome(output=f"ok on {', '.join(done)}")


def _explain(exc: Exception) -> str:
    """A short reason with what to check, without any credential."""
    name = type(exc).__name__
    text = str(exc).splitlines()[0][:200] if str(exc) else name
    if "Authentication" in name or "authentication" in text.lower():
        return f"authentication failed ({text}); check the connection's login and key"
    if "timed out" in text.lower():
        return f"timed out ({text}); raise timeout_seconds or check the command"
    if isinstance(exc, OSError) or "NoValidConnections" in name or "Unable to connect" in text:
        return f"cannot connect ({text}); check the connection's host and port and that sshd runs there"
    return f"{name}: {text}"
