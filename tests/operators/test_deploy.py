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
