"""Rollback after a failure: touched components only, dependents before their dependencies."""

from __future__ import annotations

from pathlib import Path

import pytest

from release_mgmt.dag.builder import build_release_dags
from tests.helpers import command, minimal_definition, write_definition
from tests.release_runs import states, use_releases

pytestmark = pytest.mark.e2e


def _component(name: str, *deps: str, check: str = "true") -> dict:
    return {
        "name": name,
        "version": "2.0.0",
        "depends_on": list(deps),
        "current_version": command("echo 1.0.0"),
        "deploy": command(f'echo "deploy {name} {{{{ version }}}}" >> "$JOURNAL"'),
        "validate": [command(check)],
        "rollback": command(f'echo "rollback {name} {{{{ previous_version }}}}" >> "$JOURNAL"'),
    }


def test_failed_validation_rolls_back_touched_components_in_reverse_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path
) -> None:
    """api fails validation: api, db and worker are rolled back (api before db); web never deployed."""
    journal = tmp_path / "journal"
    monkeypatch.setenv("JOURNAL", str(journal))
    monkeypatch.setenv("RELEASE_MGMT_STEP_ENV", "JOURNAL")  # a worker variable steps may see
    data = minimal_definition(
        "chain",
        environments=[{"name": "dev"}, {"name": "prod"}],
        components=[
            _component("db"),
            _component("api", "db", check="echo api unhealthy; exit 1"),
            _component("web", "api"),
            _component("worker"),
        ],
    )
    write_definition(tmp_path / "releases", "chain.yaml", data)
    use_releases(tmp_path / "releases", monkeypatch)
    run = build_release_dags(tmp_path / "releases")["release_chain"].test()
    assert str(run.state) == "failed"
    lines = journal.read_text().splitlines()
    assert sorted(line for line in lines if line.startswith("deploy")) == [
        "deploy api 2.0.0",
        "deploy db 2.0.0",
        "deploy worker 2.0.0",
    ]
    rollbacks = [line for line in lines if line.startswith("rollback")]
    assert sorted(rollbacks) == ["rollback api 1.0.0", "rollback db 1.0.0", "rollback worker 1.0.0"]
    assert rollbacks.index("rollback api 1.0.0") < rollbacks.index("rollback db 1.0.0")
    got = states(run)
    assert got["dev.deploy_web"] == "upstream_failed"
    assert got["dev.rollback_web"] == "skipped"
    assert got["prod.enter"] == "upstream_failed"


def test_deploy_failing_before_any_change_is_not_rolled_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path
) -> None:
    """When the current-version probe fails, nothing was changed, so no rollback runs; the run fails."""
    journal = tmp_path / "journal"
    monkeypatch.setenv("JOURNAL", str(journal))
    monkeypatch.setenv("RELEASE_MGMT_STEP_ENV", "JOURNAL")  # a worker variable steps may see
    comp = _component("api")
    comp["current_version"] = command("echo cannot reach host; exit 7")
    write_definition(tmp_path / "releases", "probe.yaml", minimal_definition("probe", components=[comp]))
    use_releases(tmp_path / "releases", monkeypatch)
    run = build_release_dags(tmp_path / "releases")["release_probe"].test()
    got = states(run)
    assert str(run.state) == "failed"
    assert got["dev.deploy_api"] == "failed"
    assert got["dev.rollback_api"] == "skipped"
    assert not journal.exists()


@pytest.mark.faults
def test_a_rollback_that_could_not_run_at_first_is_tried_again_and_reported_as_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Issue 16, row 6: a rollback's first try fails (as a task that could not start during an outage does):
    Airflow tries it again, the version is restored, and the run says "rolled back", not "ROLLBACK FAILED"."""
    journal = tmp_path / "journal"
    monkeypatch.setenv("JOURNAL", str(journal))
    monkeypatch.setenv("RELEASE_MGMT_STEP_ENV", "JOURNAL")
    comp = _component("api", check="exit 1")
    first_try = tmp_path / "first-try"
    comp["rollback"] = command(
        f'if [ ! -f {first_try} ]; then touch {first_try}; echo "service away"; exit 1; fi; '
        'echo "rollback api {{ previous_version }}" >> "$JOURNAL"'
    )
    write_definition(tmp_path / "releases", "flaky.yaml", minimal_definition("flaky", components=[comp]))
    use_releases(tmp_path / "releases", monkeypatch)
    run = build_release_dags(tmp_path / "releases")["release_flaky"].test()
    assert str(run.state) == "failed"
    assert states(run)["dev.rollback_api"] == "success"
    assert "rollback api 1.0.0" in journal.read_text().splitlines()
    out = capfd.readouterr().out
    assert "rolled back: api" in out
    assert "ROLLBACK FAILED" not in out
