"""Approval gates on a real Airflow: votes through the REST API as different users."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from release_mgmt.reports import evidence
from tests.helpers import command, minimal_definition, write_definition
from tests.release_runs import audit_problems, gated_sample, release_mgmt_cli, served_version, stop_sample

pytestmark = pytest.mark.e2e
GATE = "prod.gate_approval"
BUSY = {"queued", "running", "scheduled", "up_for_retry", "restarting"}


def _release(airflow, tmp_path: Path, name: str, **gate) -> str:
    """A two-environment release whose prod needs the sre group's approval; returns its DAG id."""
    journal = tmp_path / name
    journal.mkdir()
    data = minimal_definition(
        name,
        approver_groups={"sre": ["alice", "bob", "carol"]},
        environments=[{"name": "dev"}, {"name": "prod", "gates": [{"type": "approval", "groups": ["sre"], **gate}]}],
    )
    data["components"][0]["deploy"] = command(f"echo {{{{ version }}}} > {journal}/{{{{ environment }}}}")
    write_definition(airflow.releases, f"{name}.yaml", data)
    return f"release_{name}"


def _open(airflow, dag: str, run: str) -> bool:
    """The gate is parked and its request open (no answer pending)."""
    path = f"/api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{GATE}/-1/hitlDetails"
    status, detail = airflow.request("GET", path, "admin")
    return (
        status == 200 and not detail.get("response_received") and airflow.states(dag, run).get(GATE) == "awaiting_input"
    )


def _wait_open(airflow, dag: str, run: str, after: str) -> None:
    """Wait until the gate waits for the next answer.

    The extra seconds let the scheduler take in the worker's exit from the parking before the
    next answer resumes the task: an answer within about a second of parking still counts (the
    gate is retried and goes on, see the test below), but costs the retry's 10 s.
    """
    airflow.wait_for(lambda: _open(airflow, dag, run), 90, f"the gate to wait for an answer after {after}")
    time.sleep(3)


def test_separation_of_duties_and_quorum(airflow, tmp_path: Path) -> None:
    """The triggerer's approval is refused, one approval is not enough, two distinct approvers pass."""
    dag = _release(airflow, tmp_path, "gate_quorum", min_approvals=2)
    run = airflow.trigger(dag, "alice")
    _wait_open(airflow, dag, run, "the request")

    states = airflow.states(dag, run)
    assert states["dev.deploy_api"] == "success"
    assert not BUSY & set(states.values()), states  # waiting holds no task
    pool = airflow.api("GET", "/api/v2/pools/default_pool")
    assert (pool["running_slots"], pool["queued_slots"]) == (0, 0)  # ... and no executor or pool slot

    detail = airflow.api("GET", f"/api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{GATE}/-1/hitlDetails")
    assert detail["subject"] == "Approve gate_quorum into prod?"
    assert f"[open the run](<{airflow.url}/dags/{dag}/runs/{run}>)" in detail["body"]  # a link, not plain text
    assert f"(<{airflow.url}/release-console/runs/{dag}/{run}>)" in detail["body"]
    assert "- api: 1.0.0" in detail["body"]
    assert "triggered by alice" in detail["body"]
    assert airflow.answer(dag, run, GATE, user="dave", option="Approve")[0] == 403  # not an approver at all
    assert (
        airflow.answer(dag, run, GATE, user="alice", option="Approve")[0] == 200
    )  # accepted, then refused by the gate
    _wait_open(airflow, dag, run, "alice")
    assert airflow.answer(dag, run, GATE, user="bob", option="Approve")[0] == 200
    _wait_open(airflow, dag, run, "bob")
    assert airflow.states(dag, run)["prod.deploy_api"] is None  # one approval is not enough

    listed = release_mgmt_cli(airflow, "carol", "gates", "--dag", dag)
    assert f"{dag}  {run}  prod  approval  approvers: alice, bob, carol" in listed.stdout
    approved = release_mgmt_cli(airflow, "carol", "approve", run, "prod", "--comment", "looks good")
    assert approved.returncode == 0, approved.stderr
    assert airflow.wait_finished(dag, run) == "success"
    decision = airflow.xcom(dag, run, GATE)
    assert decision["decision"] == "approved"
    assert decision["approvers"] == ["bob", "carol"]
    assert [(r["user"], r["reason"]) for r in decision["refused"]] == [
        ("alice", "separation of duties: alice triggered this run and cannot approve it")
    ]
    log = airflow.log(dag, run, GATE)
    for event in ("gate.requested", "gate.vote_refused", "gate.vote", "gate.decision"):
        assert f'"event":"{event}"' in log.replace('\\"', '"')


def test_reject_stops_before_prod(airflow, tmp_path: Path) -> None:
    """A reject without comment is refused; with one, prod is never deployed and the run fails."""
    dag = _release(airflow, tmp_path, "gate_reject")
    run = airflow.trigger(dag, "alice")
    _wait_open(airflow, dag, run, "the request")
    assert airflow.answer(dag, run, GATE, user="bob", option="Reject")[0] == 200
    _wait_open(airflow, dag, run, "an empty reject")
    assert release_mgmt_cli(airflow, "bob", "reject", run, "prod").returncode == 2  # the CLI asks for a comment first
    rejected = release_mgmt_cli(airflow, "bob", "reject", run, "prod", "--comment", "error budget exhausted")
    assert rejected.returncode == 0, rejected.stderr
    assert airflow.wait_finished(dag, run) == "failed"
    states = airflow.states(dag, run)
    assert states[GATE] == "failed"
    assert states["prod.deploy_api"] == "upstream_failed"
    assert states["dev.deploy_api"] == "success"
    assert not (tmp_path / "gate_reject" / "prod").exists()
    decision = airflow.xcom(dag, run, GATE, key="decision")
    assert (decision["decision"], decision["rejected_by"], decision["comment"]) == (
        "rejected",
        "bob",
        "error budget exhausted",
    )
    report = evidence.fetch(airflow.client("admin"), dag, run)  # every task's audit lines, as an auditor reads them
    records = [record for task in report["tasks"] for record in task["audit"]]
    assert audit_problems(records) == []
    assert [r["event"] for r in records].count("gate.vote_refused") == 1  # the empty reject
    assert [r["event"] for r in records].count("gate.decision") == 1
    # the run says who stopped it and why, not only which task failed
    [finished] = [r for r in records if r["event"] == "run.finished"]
    assert "gate_approval: rejected by bob: error budget exhausted" in " ".join(finished["details"]["summary"])
    assert "rejected by bob: error budget exhausted" in airflow.log(dag, run, "summary")


def test_timeout_is_enforced_by_the_scheduler(airflow, tmp_path: Path) -> None:
    """With nobody answering, the scheduler ends the wait; on_timeout reject fails it, logged as a timeout."""
    # 10s, not less: a timeout swept before the scheduler took in the parking process's exit is failed by Airflow
    # (LocalExecutor: "finished with state success, but the task instance's state attribute is queued")
    dag = _release(airflow, tmp_path, "gate_timeout", timeout="10s")
    run = airflow.trigger(dag, "alice")
    assert airflow.wait_finished(dag, run) == "failed"
    decision = airflow.xcom(dag, run, GATE, key="decision")
    assert decision["timeout"] is True
    assert decision["rejected_by"] == ""
    assert "gate.timeout" in airflow.log(dag, run, GATE)
    assert airflow.states(dag, run)["prod.deploy_api"] == "upstream_failed"


def test_sample_release_waits_for_a_release_manager_in_prod(airflow, tmp_path: Path) -> None:
    """The sample release: dev and staging move, prod waits; the triggerer is refused, bob approves, prod moves."""
    root = tmp_path / "environments"
    data, ports = gated_sample(root)
    data["name"] = "sample_gated"
    write_definition(airflow.releases, "sample_gated.yaml", data)
    dag = "release_sample_gated"
    try:
        run = airflow.trigger(dag, "alice", {"version_web": "1.3.0"})
        _wait_open(airflow, dag, run, "the request")
        assert served_version(ports["staging"]) == "1.3.0"
        assert served_version(ports["prod"]) is None
        assert airflow.answer(dag, run, GATE, user="alice", option="Approve")[0] == 200
        _wait_open(airflow, dag, run, "alice, the triggerer")
        assert airflow.answer(dag, run, GATE, user="bob", option="Approve", comment="staging is green")[0] == 200
        airflow.wait_state(dag, run, "prod.change_authorized", "deferred")  # waits on the triggerer, no worker
        change = _waiting_change(airflow, run)
        assert change is not None
        assert change["short_description"] == "Release sample_gated to prod: web 1.3.0"
        assert served_version(ports["prod"]) is None  # nothing deployed before the CAB
        authorize = f"/change-service/api/release_mgmt/change_request/{change['sys_id']}/approve"
        # only the release managers may authorize, and never alice, who triggered the run (issue 12, row 1)
        for user in ("victor", "carol", "admin", "alice"):
            assert airflow.request("POST", authorize, user, {"comment": "ok"})[0] == 403, user
        assert _waiting_change(airflow, run) is not None  # still waiting in Authorize
        airflow.api("POST", authorize, "bob", {"comment": "CAB ok"})
        assert airflow.wait_finished(dag, run) == "success"
        closed = airflow.api("GET", f"/change-service/api/now/table/change_request/{change['sys_id']}")["result"]
        assert (closed["state"], closed["close_code"]) == ("3", "successful")
        from release_mgmt.reports import evidence

        report = evidence.fetch(airflow.client("admin"), dag, run)  # what an auditor gets
        prod = report["environments"]["prod"]
        assert prod["change"]["number"] == change["number"]
        assert prod["change"]["close_code"] == "successful"
        assert [(a["approver"], a["state"], a["comments"]) for a in prod["change"]["decisions"]] == [
            ("bob", "approved", "CAB ok")
        ]
        assert prod["gates"][0]["approvers"] == ["bob"]
        assert [v["user"] for v in prod["refused_votes"]] == ["alice"]
        assert prod["components"]["web"]["after"] == "1.3.0"
        assert served_version(ports["prod"]) == "1.3.0"
        assert airflow.xcom(dag, run, GATE)["approvers"] == ["bob"]
    finally:
        stop_sample(root, ports)


def _waiting_change(airflow, run: str) -> dict | None:
    found = airflow.api("GET", "/change-service/api/now/table/change_request?sysparm_query=state=-3")["result"]
    return next((c for c in found if run in c["correlation_id"]), None)


def test_emergency_run_deploys_during_a_freeze_only_after_break_glass(airflow, tmp_path: Path) -> None:
    """An emergency run is held until a break-glass approver agrees, then deploys through the freeze."""
    journal = tmp_path / "emergency"
    journal.mkdir()
    now = datetime.now(UTC)
    data = minimal_definition(
        "emergency",
        environments=[{"name": "prod"}],
        windows=[
            {
                "name": "close",
                "kind": "freeze",
                "reason": "quarter close",
                "timezone": "UTC",
                "start": (now - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M"),
                "end": (now + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M"),
            }
        ],
        break_glass={"type": "approval", "users": ["bob", "carol"], "min_approvals": 1, "timeout": "1h"},
    )
    data["components"][0]["deploy"] = command(f"echo {{{{ version }}}} > {journal}/prod")
    write_definition(airflow.releases, "emergency.yaml", data)
    dag = "release_emergency"
    run = airflow.trigger(dag, "alice", {"emergency_change": "CHG0042"})
    airflow.wait_for(
        lambda: airflow.states(dag, run).get("break_glass") == "awaiting_input", 90, "the break-glass request"
    )
    time.sleep(3)  # see _wait_open
    states = airflow.states(dag, run)
    assert states["prod.deploy_api"] is None  # held: nothing deployed without the approval
    assert not (journal / "prod").exists()
    assert airflow.answer(dag, run, "break_glass", user="bob", option="Approve", comment="outage")[0] == 200
    assert airflow.wait_finished(dag, run) == "success"
    assert (journal / "prod").read_text().strip() == "1.0.0"
    log = airflow.log(dag, run, "prod.deploy_api").replace('\\"', '"')
    assert '"event":"window.freeze_overridden"' in log
    assert '"change":"CHG0042"' in log


@pytest.mark.faults
@pytest.mark.parametrize("delay", [0, 1, 2, 5])
def test_an_answer_given_at_any_moment_after_parking_counts(airflow, tmp_path: Path, delay: float) -> None:
    """Issue 16, row 8: bob approves 0, 1, 2 or 5 s after the gate parked. Airflow 3.3 fails a gate answered
    within about a second of parking (it did at 0 s here); the gate is tried again, goes on from the progress it
    kept, counts bob's answer from the earlier try's request, and prod is deployed with bob as the approver."""
    dag = _release(airflow, tmp_path, f"gate_race_{delay}")
    run = airflow.trigger(dag, "alice")
    airflow.wait_for(lambda: _open(airflow, dag, run), 120, "the request")
    time.sleep(delay)
    assert airflow.answer(dag, run, GATE, user="bob", option="Approve", comment="ok")[0] == 200
    assert airflow.wait_finished(dag, run, 240) == "success", airflow.states(dag, run)
    decision = airflow.xcom(dag, run, GATE)
    assert (decision["decision"], decision["approvers"]) == ("approved", ["bob"])
    assert [v["comment"] for v in decision["votes"]] == ["ok"]
    assert airflow.states(dag, run)["prod.deploy_api"] == "success"
