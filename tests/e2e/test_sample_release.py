"""The sample release end to end with Airflow's dag.test(): real processes on loopback ports."""

from __future__ import annotations

import pytest

from tests.release_runs import audit_problems, audit_records, states

pytestmark = pytest.mark.e2e
ENVS = ("dev", "staging", "prod")


def test_good_version_reaches_prod(sample, capfd) -> None:
    """A good version moves dev -> staging -> prod and every service answers with it."""
    run = sample.dag().test(run_conf={"version_web": "1.3.0"})
    assert str(run.state) == "success"
    assert {env: sample.version(env) for env in ENVS} == dict.fromkeys(ENVS, "1.3.0")
    got = states(run)
    assert all(got[f"{env}.rollback_web"] == "skipped" for env in ENVS)
    records = audit_records(capfd.readouterr().out)
    assert audit_problems(records) == []
    assert {r["event"] for r in records} >= {
        "run.planned",
        "environment.entered",
        "deploy.started",
        "deploy.finished",
        "validate.finished",
        "deployment.recorded",
        "rollback.skipped",
        "environment.finished",
        "run.finished",
    }
    deploys = [r for r in records if r["event"] == "deploy.finished"]
    assert [(r["release"], r["environment"], r["component"], r["version"], r["outcome"]) for r in deploys] == [
        (sample.name, env, "web", "1.3.0", "success") for env in ENVS
    ]


def test_bad_version_rolls_back_and_fails(sample, capfd) -> None:
    """2.0.0 fails its health check in dev: 1.2.0 is restored and answering, nothing further moves, run failed."""
    assert str(sample.dag().test().state) == "success"  # 1.2.0 everywhere first
    capfd.readouterr()
    run = sample.dag().test(run_conf={"version_web": "2.0.0"})
    assert str(run.state) == "failed"
    got = states(run)
    assert got["dev.validate_web"] == "failed"
    assert got["dev.rollback_web"] == "success"
    assert got["dev.result"] == "failed"
    assert got["staging.enter"] == "upstream_failed"
    assert got["staging.deploy_web"] == "upstream_failed"
    assert got["summary"] == "failed"
    assert {env: sample.version(env) for env in ENVS} == dict.fromkeys(ENVS, "1.2.0")
    records = audit_records(capfd.readouterr().out)
    assert audit_problems(records) == []
    rollback = next(r for r in records if r["event"] == "rollback.finished")
    assert (rollback["environment"], rollback["outcome"]) == ("dev", "success")
    assert next(r for r in records if r["event"] == "deploy.started")["details"] == {"previous_version": "1.2.0"}
    finished = next(r for r in records if r["event"] == "run.finished")
    assert finished["details"]["environments"] == {
        "dev": "rolled_back",
        "staging": "not_started",
        "prod": "not_started",
    }


def test_first_deploy_failing_undeploys(sample, capfd) -> None:
    """With no earlier deployment, rollback runs the component's undeploy and says there was nothing to restore."""
    run = sample.dag().test(run_conf={"version_web": "2.0.0", "environments": ["dev"]})
    assert str(run.state) == "failed"
    assert states(run)["dev.rollback_web"] == "success"
    assert sample.health("dev") is None
    assert "nothing to restore (no earlier deployment of web in dev): undeploying" in capfd.readouterr().out


def test_dry_run_changes_nothing(sample, capfd) -> None:
    """A dry run plans and logs every step but starts no service and writes no folder."""
    run = sample.dag().test(run_conf={"dry_run": True})
    assert str(run.state) == "success"
    assert all(sample.health(env) is None for env in ENVS)
    assert not sample.root.exists()
    out = capfd.readouterr().out
    assert "DRY RUN: would run `python3 ../sample_service/ctl.py deploy" in out


def test_prefix_of_environments(sample) -> None:
    """Choosing only dev deploys dev and leaves staging and prod alone; the run succeeds."""
    run = sample.dag().test(run_conf={"environments": ["dev"]})
    assert str(run.state) == "success"
    assert sample.version("dev") == "1.2.0"
    assert sample.health("staging") is None
    assert states(run)["staging.enter"] == "skipped"


def test_skipping_environments_fails_before_touching_anything(sample) -> None:
    """A later start without the earlier environment deployed fails in preflight; nothing is entered."""
    run = sample.dag().test(run_conf={"environments": ["staging"]})
    got = states(run)
    assert str(run.state) == "failed"
    assert got["preflight"] == "failed"
    assert got["dev.deploy_web"] == "upstream_failed"
    assert all(sample.health(env) is None for env in ENVS)


def test_unsafe_version_is_refused_at_trigger(sample) -> None:
    """The trigger form's pattern refuses a version with shell characters before a run exists."""
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="version_web"):
        sample.dag().test(run_conf={"version_web": "1.0;reboot"})
