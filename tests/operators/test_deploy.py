"""The deployment record: last known good per environment, the promotion rule, and `status`."""

from __future__ import annotations

import pytest

from release_mgmt import cli
from tests.release_runs import audit_records, states

pytestmark = pytest.mark.e2e


def test_rollback_restores_last_known_good_from_the_record(sample, capfd) -> None:
    """1.2.0 then 1.3.0 are recorded; 2.0.0 fails and 1.3.0 (the last good) is restored from the record."""
    assert str(sample.dag().test(run_conf={"environments": ["dev"]}).state) == "success"
    assert str(sample.dag().test(run_conf={"version_web": "1.3.0", "environments": ["dev"]}).state) == "success"
    capfd.readouterr()
    run = sample.dag().test(run_conf={"version_web": "2.0.0", "environments": ["dev"]})
    assert str(run.state) == "failed"
    assert sample.version("dev") == "1.3.0"
    out = capfd.readouterr().out
    assert "last known good (deployment record): 1.3.0" in out
    assert not any(r["event"] == "deployment.recorded" for r in audit_records(out))  # 2.0.0 never recorded


def test_dry_run_records_nothing(sample, capsys) -> None:
    """A dry run succeeds without adding a deployment record."""
    assert str(sample.dag().test(run_conf={"dry_run": True}).state) == "success"
    capsys.readouterr()
    cli.main(["status", sample.name])
    assert "no deployments recorded" in capsys.readouterr().out


def test_promotion_rule(sample, capfd) -> None:
    """prod alone may deploy only what staging runs: never-deployed and different versions are refused."""
    first = sample.dag().test(run_conf={"environments": ["prod"]})
    assert states(first)["preflight"] == "failed"
    assert "web 1.2.0 was never deployed to staging" in capfd.readouterr().out
    assert sample.health("prod") is None

    staged = sample.dag().test(run_conf={"version_web": "1.3.0", "environments": ["dev", "staging"]})
    assert str(staged.state) == "success"
    promoted = sample.dag().test(run_conf={"version_web": "1.3.0", "environments": ["prod"]})
    assert str(promoted.state) == "success"
    assert sample.version("prod") == "1.3.0"
    assert states(promoted)["staging.enter"] == "skipped"

    capfd.readouterr()
    refused = sample.dag().test(run_conf={"version_web": "1.4.0", "environments": ["prod"]})
    assert states(refused)["preflight"] == "failed"
    assert "web 1.4.0 is not what staging runs (1.3.0" in capfd.readouterr().out
    assert sample.version("prod") == "1.3.0"


def test_status_prints_what_runs_where(sample, capsys) -> None:
    """`status RELEASE` lists each environment in promotion order with version, time and run."""
    run = sample.dag().test(run_conf={"version_web": "1.3.0"})
    capsys.readouterr()
    assert cli.main(["status", sample.name, "--releases", str(sample.folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["RELEASE", "ENVIRONMENT", "COMPONENT", "VERSION", "SINCE", "RUN"]
    rows = [line.split() for line in lines[1:]]
    assert [(r[0], r[1], r[2], r[3], r[5]) for r in rows] == [
        (sample.name, env, "web", "1.3.0", run.run_id) for env in ("dev", "staging", "prod")
    ]


@pytest.mark.faults
def test_drift_between_the_record_and_the_target_is_an_audit_event(tmp_path, monkeypatch, airflow_db, capfd) -> None:
    """Issue 16: after a kill (or a change by hand) the environment may run another version than the record says.
    The next deploy asks the target first and writes `deployment.drift` (recorded, running) before changing it."""
    from release_mgmt.dag.builder import build_release_dags
    from tests.helpers import command, minimal_definition, write_definition
    from tests.release_runs import use_releases

    current = tmp_path / "current"
    data = minimal_definition("drifty", environments=[{"name": "dev"}])
    data["components"][0]["current_version"] = command(f"cat {current} 2>/dev/null || true")
    data["components"][0]["deploy"] = command(f'echo "$RELEASE_VERSION" > {current}')
    data["components"][0]["validate"] = [command(f'test "$(cat {current})" = "$RELEASE_VERSION"')]
    write_definition(tmp_path / "releases", "drifty.yaml", data)
    use_releases(tmp_path / "releases", monkeypatch)
    dag = build_release_dags(tmp_path / "releases")["release_drifty"]
    assert str(dag.test(run_conf={"version_api": "1.6.0"}).state) == "success"
    assert str(dag.test(run_conf={"version_api": "1.6.1"}).state) == "success"
    assert not any(r["event"] == "deployment.drift" for r in audit_records(capfd.readouterr().out))  # in step
    current.write_text("1.7.0\n")  # what a killed run's orphaned command would have left
    run = dag.test(run_conf={"version_api": "1.8.0"})
    assert str(run.state) == "success"
    [drift] = [r for r in audit_records(capfd.readouterr().out) if r["event"] == "deployment.drift"]
    assert drift["details"]["recorded"] == "1.6.1"
    assert drift["details"]["running"] == "1.7.0"
    assert (drift["environment"], drift["component"], drift["version"]) == ("dev", "api", "1.8.0")
