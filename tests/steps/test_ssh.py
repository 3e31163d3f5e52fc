"""The ssh step against a real OpenSSH server on loopback, through Airflow's SSH provider."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from release_mgmt.errors import StepError
from release_mgmt.steps import STEP_ADAPTER, StepContext

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
