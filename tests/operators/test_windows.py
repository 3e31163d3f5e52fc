"""Freeze windows end to end with dag.test(): waiting (deferred), failing fast, re-checks before each deploy,
and rollbacks that a freeze never blocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from release_mgmt.dag.builder import build_release_dags
from tests.helpers import command, minimal_definition, write_definition
from tests.release_runs import audit_records, states, use_releases

pytestmark = pytest.mark.e2e


def _now() -> datetime:
    """Now, to the second: windows are written to the second, so comparisons use whole seconds too."""
    return datetime.now(UTC).replace(microsecond=0)


def _local(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _freeze(start: datetime, end: datetime, **scope) -> dict:
    return {
        "name": "change-freeze",
        "kind": "freeze",
        "reason": "quarter close",
        "timezone": "UTC",
        "start": _local(start),
        "end": _local(end),
        **scope,
    }


def _component(name: str, journal: Path, *deps: str, check: str = "true") -> dict:
    stamp = f'echo "{{{{ task_id }}}} $(date +%s.%N)" >> {journal}'
    return {
        "name": name,
        "version": "1.0.0",
        "depends_on": list(deps),
        "deploy": command(f"{stamp}; echo deploy {name}"),
        "validate": [command(check)],
        "rollback": command(f"{stamp}; echo rollback {name}"),
    }


def _run(tmp_path: Path, monkeypatch, name: str, components: list[dict], windows: list[dict], **env) -> Any:
    data = minimal_definition(name, components=components, windows=windows, environments=[{"name": "prod", **env}])
    write_definition(tmp_path / "releases", f"{name}.yaml", data)
    use_releases(tmp_path / "releases", monkeypatch)
    return build_release_dags(tmp_path / "releases")[f"release_{name}"].test()


def _times(journal: Path) -> dict[str, float]:
    return {line.split()[0]: float(line.split()[1]) for line in journal.read_text().splitlines()}


def test_release_inside_a_freeze_waits_and_proceeds_when_it_ends(tmp_path, monkeypatch, airflow_db, capfd) -> None:
    """A run started during a freeze waits (deferred) and deploys once the freeze ends."""
    journal = tmp_path / "journal"
    now = _now()
    end = now + timedelta(seconds=8)
    run = _run(
        tmp_path, monkeypatch, "frozen_wait", [_component("api", journal)], [_freeze(now - timedelta(minutes=1), end)]
    )
    assert str(run.state) == "success"
    assert _times(journal)["prod.deploy_api"] >= end.timestamp()
    events = [r for r in audit_records(capfd.readouterr().out) if r["event"].startswith("window.")]
    waiting = next(r for r in events if r["event"] == "window.waiting")
    assert waiting["details"]["window"] == "change-freeze"
    assert waiting["details"]["until"] == end.isoformat()


def test_fail_fast_policy_names_the_window(tmp_path, monkeypatch, airflow_db, capfd) -> None:
    """on_freeze: fail ends the run at once, naming the window and its end; nothing is deployed."""
    journal = tmp_path / "journal"
    now = _now()
    run = _run(
        tmp_path,
        monkeypatch,
        "frozen_fail",
        [_component("api", journal)],
        [_freeze(now - timedelta(minutes=1), now + timedelta(hours=2))],
        on_freeze="fail",
    )
    assert str(run.state) == "failed"
    assert states(run)["prod.enter"] == "failed"
    assert not journal.exists()
    out = capfd.readouterr().out
    assert "frozen: freeze change-freeze (quarter close)" in out
    assert "(on_freeze: fail)" in out


def test_freeze_is_checked_again_before_each_deploy(tmp_path, monkeypatch, airflow_db) -> None:
    """A freeze that starts after the environment began still holds the next deploy until it ends."""
    journal = tmp_path / "journal"
    now = _now()
    start, end = now + timedelta(seconds=6), now + timedelta(seconds=14)
    slow_check = "sleep 9"  # db's validation outlasts the freeze's start
    run = _run(
        tmp_path,
        monkeypatch,
        "frozen_midway",
        [_component("db", journal, check=slow_check), _component("api", journal, "db")],
        [_freeze(start, end)],
    )
    assert str(run.state) == "success"
    times = _times(journal)
    assert times["prod.deploy_db"] < start.timestamp()
    assert times["prod.deploy_api"] >= end.timestamp()


def test_rollback_runs_during_a_freeze(tmp_path, monkeypatch, airflow_db, capfd) -> None:
    """Validation fails after a freeze began: the rollback still runs, and the log says it was allowed."""
    journal = tmp_path / "journal"
    now = _now()
    component = {**_component("api", journal, check="sleep 6; exit 1"), "current_version": command("echo 0.9.0")}
    run = _run(
        tmp_path,
        monkeypatch,
        "frozen_rollback",
        [component],
        [_freeze(now + timedelta(seconds=4), now + timedelta(hours=1))],
    )
    assert str(run.state) == "failed"
    assert states(run)["prod.rollback_api"] == "success"
    assert "prod.rollback_api" in _times(journal)
    assert any(r["event"] == "window.rollback_allowed" for r in audit_records(capfd.readouterr().out))


def _maintenance(start: datetime, end: datetime) -> dict:
    return {
        "name": "night",
        "kind": "maintenance",
        "reason": "low traffic",
        "timezone": "UTC",
        "start": _local(start),
        "end": _local(end),
    }


def test_early_run_waits_for_the_maintenance_window(tmp_path, monkeypatch, airflow_db) -> None:
    """Before the window opens the environment waits (deferred), then deploys inside it."""
    journal = tmp_path / "journal"
    opens = _now() + timedelta(seconds=7)
    run = _run(
        tmp_path,
        monkeypatch,
        "window_wait",
        [_component("api", journal)],
        [_maintenance(opens, opens + timedelta(hours=1))],
        expected_duration="10m",
    )
    assert str(run.state) == "success"
    assert _times(journal)["prod.deploy_api"] >= opens.timestamp()


def test_outside_maintenance_fail_policy(tmp_path, monkeypatch, airflow_db, capfd) -> None:
    """outside_maintenance: fail ends the run when no window is open, naming the next one."""
    journal = tmp_path / "journal"
    opens = _now() + timedelta(hours=3)
    run = _run(
        tmp_path,
        monkeypatch,
        "window_fail",
        [_component("api", journal)],
        [_maintenance(opens, opens + timedelta(hours=1))],
        outside_maintenance="fail",
    )
    assert str(run.state) == "failed"
    assert not journal.exists()
    assert "outside maintenance windows; next with 0s left: maintenance night (low traffic)" in (capfd.readouterr().out)
