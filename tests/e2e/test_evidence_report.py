"""The evidence report of a finished run on a real Airflow, read through the REST API."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.helpers import command, minimal_definition, write_definition
from tests.release_runs import release_mgmt_cli

pytestmark = pytest.mark.e2e


def test_report_of_an_approved_run(airflow, tmp_path: Path) -> None:
    """Trigger as alice, bob approves prod: the report names both, the versions and a digest that verifies."""
    from release_mgmt.reports import evidence

    data = minimal_definition(
        "evidence",
        environments=[{"name": "dev"}, {"name": "prod", "gates": [{"type": "approval", "users": ["bob", "carol"]}]}],
    )
    data["components"][0]["deploy"] = command("echo deploying {{ version }}")
    data["components"][0]["validate"] = [command('test "{{ version }}" != 6.6.6')]  # 6.6.6 is broken
    write_definition(airflow.releases, "evidence.yaml", data)
    dag = "release_evidence"
    run = airflow.trigger(dag, "alice", {"version_api": "2.5.0"})
    airflow.wait_state(dag, run, "prod.gate_approval", "awaiting_input")
    time.sleep(3)  # see test_approval_gates._wait_open
    assert airflow.answer(dag, run, "prod.gate_approval", user="bob", option="Approve", comment="fine")[0] == 200
    assert airflow.wait_finished(dag, run) == "success"

    out = tmp_path / "report.json"
    releases = ("--releases", str(airflow.releases))
    as_json = ("--format", "json", "--out", str(out))
    done = release_mgmt_cli(airflow, "admin", "audit", "evidence", run, *as_json, *releases)  # the release's name
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert evidence.verify(report)
    assert (report["trigger"]["by"], report["result"]) == ("alice", "success")
    assert report["trigger"]["parameters"]["version_api"] == "2.5.0"
    prod = report["environments"]["prod"]
    assert prod["outcome"] == "succeeded"
    assert prod["gates"][0]["approvers"] == ["bob"]
    assert prod["components"]["api"]["version"] == "2.5.0"
    assert report["malformed_audit_lines"] == []
    assert report["audit_lines"] > 10

    hist = release_mgmt_cli(airflow, "admin", "history", dag, *releases)  # a DAG id works as well as the name
    assert hist.returncode == 0, hist.stdout + hist.stderr
    prod_line = next(line for line in hist.stdout.splitlines() if "  prod " in line)
    assert "succeeded" in prod_line
    assert "api=2.5.0" in prod_line
    assert "approvers bob" in prod_line
    assert "DORA (prod, last 1 runs): 1.0 deployments/day" in hist.stdout


def test_report_of_a_rolled_back_run(airflow, tmp_path: Path) -> None:
    """A broken version in dev: the report shows the failed check, the rollback and the version restored."""
    from release_mgmt.reports import evidence

    dag = "release_evidence"  # the release of the test above: 2.5.0 is recorded in dev
    run = airflow.trigger(dag, "alice", {"version_api": "6.6.6", "environments": ["dev"]})
    assert airflow.wait_finished(dag, run) == "failed"
    done = release_mgmt_cli(airflow, "admin", "audit", dag, run, "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert evidence.verify(report)
    api = report["environments"]["dev"]["components"]["api"]
    assert (api["previous_version"], api["version"], api["after"]) == ("2.5.0", "6.6.6", "2.5.0")
    assert report["environments"]["dev"]["outcome"] == "rolled_back"
    validate = next(t for t in report["tasks"] if t["task_id"] == "dev.validate_api")
    assert validate["state"] == "failed"
    assert [a["event"] for a in validate["audit"]] == ["validate.started", "validate.finished"]
