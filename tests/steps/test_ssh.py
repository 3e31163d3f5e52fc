"""The ssh step against a real OpenSSH server on loopback, through Airflow's SSH provider."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

from release_mgmt.errors import StepError
from release_mgmt.steps import STEP_ADAPTER, StepContext
from tests.processes import gone_within, pid_from

CTX: dict[str, Any] = {
    "release": "shop",
    "environment": "dev",
    "component": "api",
    "version": "1.2.3",
    "action": "deploy",
}


@pytest.fixture
def hosts(ssh_server, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Three Airflow SSH connections (web_1..web_3), all to the test sshd."""
    ids = ["web_1", "web_2", "web_3"]
    for conn_id in ids:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", ssh_server.connection())
    return ids


def _ctx(tmp_path: Path) -> StepContext:
    return StepContext(workdir=str(tmp_path), log=logging.getLogger("test.ssh"), **CTX)


def _step(**fields) -> Any:
    return STEP_ADAPTER.validate_python({"type": "ssh", "connect_attempts": 1, **fields})


def test_runs_on_every_host_with_release_variables(hosts, tmp_path: Path, capfd) -> None:
    """Each host runs the command with RELEASE_* exported; its output reaches the log."""
    journal = tmp_path / "journal"
    step = _step(connections=hosts, command=f'echo "$RELEASE_TARGET $RELEASE_VERSION" >> {journal}; echo hello')
    step.run(_ctx(tmp_path))
    assert journal.read_text().splitlines() == ["web_1 1.2.3", "web_2 1.2.3", "web_3 1.2.3"]
    assert "hello" in capfd.readouterr().out  # streamed by the SSH provider's hook


def test_rolling_batches_stop_at_first_failed_batch(hosts, tmp_path: Path) -> None:
    """batch_size 1: web_2 fails, so web_3 is never touched, and the error names the host and exit code."""
    journal = tmp_path / "journal"
    step = _step(connections=hosts, command=f'echo "$RELEASE_TARGET" >> {journal}; test "$RELEASE_TARGET" != web_2')
    with pytest.raises(
        StepError,
        match=r"failed on web_2 \(.*@127\.0\.0\.1:\d+\): command exited with code 1\. "
        r"Not started on: web_3",
    ):
        step.run(_ctx(tmp_path))
    assert journal.read_text().splitlines() == ["web_1", "web_2"]


def test_batch_runs_hosts_in_parallel(hosts, tmp_path: Path) -> None:
    """batch_size 2: both hosts of a batch are busy at the same time (each exits 0 only once it saw the other
    start; run one at a time, the first would exit 9 and fail the step)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    # each host waits until the other one has started: only possible when they run together
    cmd = (
        f"touch {marks}/$RELEASE_TARGET; for i in $(seq 50); do [ $(ls {marks} | wc -l) -ge 2 ] && exit 0; "
        "sleep 0.1; done; exit 9"
    )
    outcome = _step(connections=hosts[:2], command=cmd, batch_size=2).run(_ctx(tmp_path))
    assert outcome.output == "ok on web_1, web_2"
    assert sorted(p.name for p in marks.iterdir()) == ["web_1", "web_2"]
    for p in marks.iterdir():
        p.unlink()
    with pytest.raises(StepError, match="exited with code 9"):
        _step(connections=hosts[:2], command=cmd, batch_size=1).run(_ctx(tmp_path))


def test_unknown_connection(tmp_path: Path) -> None:
    """A connection id that does not exist fails naming it and saying what to add."""
    with pytest.raises(StepError, match="nope_1: no such Airflow connection"):
        _step(connections=["nope_1"], command="true").run(_ctx(tmp_path))


def test_unreachable_host(ssh_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed port fails with the host and port named and what to check."""
    from tests.helpers import free_port

    monkeypatch.setenv("AIRFLOW_CONN_DEAD", ssh_server.connection().replace(str(ssh_server.port), str(free_port())))
    with pytest.raises(StepError, match=r"dead \(.*@127\.0\.0\.1:\d+\): cannot connect .*check the connection's host"):
        _step(connections=["dead"], command="true").run(_ctx(tmp_path))


def test_refused_key(ssh_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key the server does not accept fails as an authentication problem, without the key in the message."""
    from tests.servers import _keygen

    _keygen(tmp_path / "other_key")
    conn = ssh_server.connection().replace(str(ssh_server.client_key), str(tmp_path / "other_key"))
    monkeypatch.setenv("AIRFLOW_CONN_STRANGER", conn)
    with pytest.raises(StepError, match="authentication failed") as info:
        _step(connections=["stranger"], command="true").run(_ctx(tmp_path))
    assert "PRIVATE KEY" not in str(info.value)


def test_command_timeout(hosts, tmp_path: Path) -> None:
    """A command silent past timeout_seconds fails as timed out."""
    with pytest.raises(StepError, match="timed out"):
        _step(connections=hosts[:1], command="sleep 20", timeout_seconds=1).run(_ctx(tmp_path))


def test_on_kill_hangs_up_the_remote_command_then_runs_stop_command(hosts, tmp_path: Path) -> None:
    """Issue 16: the task is killed mid-command: the connection is closed (the remote shell gets SIGHUP through
    its terminal), stop_command runs on the host, and the step fails saying why; the deploy never finishes."""
    import threading

    slow = f"echo $$ > {tmp_path}/remote.pid; sleep 60; echo finished > {tmp_path}/finished"
    stop = f'echo "stopped $RELEASE_TARGET $RELEASE_VERSION" > {tmp_path}/stopped'
    step = _step(connections=hosts[:1], command=slow, stop_command=stop)
    ctx = _ctx(tmp_path)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            step.run(ctx)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            failure.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    remote = pid_from(tmp_path / "remote.pid")
    said = ctx.stopper.stop()
    worker.join(30)
    assert len(said) == 1
    where = r"web_1 \(\w+@127\.0\.0\.1:\d+\)"
    assert re.fullmatch(f"ssh command on {where}: connection closed; stop_command ran on {where}", said[0]), said
    assert gone_within([remote], 10), "the remote command outlived the hang-up"
    assert (tmp_path / "stopped").read_text().strip() == "stopped web_1 1.2.3"
    assert not (tmp_path / "finished").exists()
    assert failure
    assert "stopped because the task was killed" in str(failure[0])


@pytest.mark.faults
def test_a_killed_task_process_hangs_up_the_remote_command(hosts, tmp_path: Path) -> None:
    """SIGKILL of the process running the step: its connection drops, and the remote command (on a terminal)
    gets SIGHUP and ends instead of deploying on behind the rollback."""
    import subprocess
    import sys
    import textwrap

    slow = f"echo $$ > {tmp_path}/remote.pid; sleep 60; echo finished > {tmp_path}/finished"
    code = textwrap.dedent(
        f"""
        import logging
        from release_mgmt.steps import STEP_ADAPTER, StepContext
        step = STEP_ADAPTER.validate_python(
            {{"type": "ssh", "connections": ["web_1"], "command": {slow!r}, "connect_attempts": 1}}
        )
        step.run(StepContext(workdir={str(tmp_path)!r}, log=logging.getLogger("t"), **{CTX!r}))
        """
    )
    task = subprocess.Popen([sys.executable, "-c", code])
    remote = pid_from(tmp_path / "remote.pid")
    task.kill()
    task.wait()
    assert gone_within([remote], 15), "the remote command outlived its task's process"
    assert not (tmp_path / "finished").exists()


@pytest.mark.faults
def test_a_failing_stop_command_is_reported_not_raised(hosts, tmp_path: Path) -> None:
    """A stop_command that fails ends in a clear sentence in the task log (check the host by hand), never in an
    exception out of on_kill; the remote command is hung up all the same."""
    import threading

    slow = f"echo $$ > {tmp_path}/remote.pid; sleep 60"
    step = _step(connections=hosts[:1], command=slow, stop_command="echo cannot; exit 3")
    ctx = _ctx(tmp_path)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            step.run(ctx)
        except StepError as exc:
            failure.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    remote = pid_from(tmp_path / "remote.pid")
    [said] = ctx.stopper.stop()
    worker.join(30)
    assert failure, "the step should fail: its task was killed"
    assert "stop_command FAILED on web_1" in said
    assert "(exit code 3): check the host by hand" in said
    assert gone_within([remote], 10)
