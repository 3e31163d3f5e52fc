"""A release train of three members on a real Airflow: each member's own DAG runs per environment in the train's
order, one change per environment lists every member's versions, and when a member fails validation in staging it
rolls itself back and the train's policy (rollback_train) reverts the member already deployed there to its last
known good version, through its own DAG, with the promotion rule waived by the train's signed claim. Someone
who copies a claim into a run of their own gets nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from release_mgmt.reports import evidence
from tests.e2e.test_console_browser import Person
from tests.helpers import command, write_definition

# a train run moves 9 member runs one after another where the order says so: more than a release run takes
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

MEMBERS = ("tr_identity", "tr_payments", "tr_web")


def member(name: str, log: Path) -> dict[str, Any]:
    """A member whose steps append "<release> <action> <env> <version>" to ``log``; tr_payments 2.0.0 fails its
    check in staging."""
    write = f">> {log}"
    check = 'test "{{ environment }}/{{ version }}" != staging/2.0.0' if name == "tr_payments" else "true"
    # tr_web asks bob or carol in every environment; the train's member_gates: waive stands for them
    gates = [{"type": "approval", "users": ["bob", "carol"]}] if name == "tr_web" else []
    return {
        "name": name,
        "owner": f"team-{name}",
        "components": [
            {
                "name": "api",
                "version": "1.0.0",
                "deploy": command(f"echo {name} deploy {{{{ environment }}}} {{{{ version }}}} {write}"),
                "validate": [command(check)],
                "rollback": command(f"echo {name} rollback {{{{ environment }}}} {{{{ previous_version }}}} {write}"),
            }
        ],
        "environments": [{"name": e, "gates": gates} for e in ("dev", "staging", "prod")],
    }


TRAIN = {
    "name": "q4",
    "owner": "release-office",
    "description": "Quarterly train of identity, payments and web",
    "members": [
        {"release": "tr_identity"},
        {"release": "tr_payments", "after": ["tr_identity"]},
        {"release": "tr_web", "after": ["tr_identity"]},
    ],
    "environments": [
        {"name": "dev"},
        {"name": "staging"},
        {"name": "prod", "change": {"type": "normal", "authorizers": {"users": ["bob", "carol"]}, "poll": "5s"}},
    ],
    "on_member_failure": "rollback_train",
    "member_gates": "waive",
    "poke_seconds": 5,
}


@pytest.fixture(scope="module")
def train(airflow, tmp_path_factory):
    log = tmp_path_factory.mktemp("train") / "steps.log"
    log.touch()
    for name in MEMBERS:
        write_definition(airflow.releases, f"{name}.yaml", member(name, log))
    write_definition(airflow.releases.parent / "trains", "q4.yaml", TRAIN)
    for dag_id in ("train_q4", *(f"release_{m}" for m in MEMBERS)):
        airflow.wait_for(lambda d=dag_id: airflow.dag_ready(d), 180, f"DAG {dag_id}")
    return log


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines()


def member_runs(airflow, train_run: str) -> list[dict[str, Any]]:
    """Every member run the train run started (its run ids carry the train run's)."""
    found = []
    for name in MEMBERS:
        runs = airflow.api("GET", f"/api/v2/dags/release_{name}/dagRuns?limit=100")["dag_runs"]
        found += [
            r for r in runs if r["dag_run_id"].endswith(train_run.replace("+", "_")) or train_run in r["dag_run_id"]
        ]
    return found


def test_a_train_moves_its_members_in_order_under_one_change_per_environment(airflow, train) -> None:
    """dev, staging, prod in turn; identity before payments and web in each; prod's one change lists all three."""
    run = airflow.trigger("train_q4", "alice")
    change: dict[str, Any] = airflow.wait_for(lambda: _change(airflow, run), 300, "the train's prod change")
    for name in MEMBERS:
        assert f"{name} api: 1.0.0" in change["description"]
    assert "- tr_payments (after tr_identity): release_tr_payments for prod: api" in change["implementation_plan"]
    airflow.api("POST", f"/change-service/api/release_mgmt/change_request/{change['sys_id']}/approve", "bob", {})
    assert airflow.wait_finished("train_q4", run, 600) == "success"
    deploys = [line for line in lines(train) if " deploy " in line]
    assert len(deploys) == 9
    for env in ("dev", "staging", "prod"):
        here = [line.split()[0] for line in deploys if f" {env} " in line]
        assert here[0] == "tr_identity"
        assert sorted(here[1:]) == ["tr_payments", "tr_web"]
    assert [line.split()[2] for line in deploys[::3]] == ["dev", "staging", "prod"]
    runs = member_runs(airflow, run)
    assert len(runs) == 9
    assert {r["state"] for r in runs} == {"success"}
    web_dev = next(r["dag_run_id"] for r in runs if r["dag_id"] == "release_tr_web" and "__dev__" in r["dag_run_id"])
    assert "gate.waived" in airflow.log("release_tr_web", web_dev, "dev.gate_approval")
    mine = [c for c in _changes(airflow) if run in c["correlation_id"]]
    assert len(mine) == 1
    assert mine[0]["close_code"] == "successful"
    report = evidence.fetch(airflow.client("admin"), "train_q4", run)
    assert {v["component"]: v["version"] for v in report["versions"]} == {f"{m}.api": "1.0.0" for m in MEMBERS}
    assert {env: s["outcome"] for env, s in report["environments"].items()} == {
        "dev": "succeeded",
        "staging": "succeeded",
        "prod": "succeeded",
    }


def test_a_failing_member_rolls_itself_back_and_the_train_reverts_the_others(
    airflow, train, browser, tmp_path: Path
) -> None:
    """payments 2.0.0 fails its check in staging: it restores 1.0.0 itself; identity and web, deployed there at
    1.1.0, are deployed again at 1.0.0 by their own DAGs (promotion waived by the train); prod never starts."""
    start = len(lines(train))
    conf = {
        "environments": ["dev", "staging"],
        "version_tr_identity__api": "1.1.0",
        "version_tr_payments__api": "2.0.0",
        "version_tr_web__api": "1.1.0",
    }
    run = airflow.trigger("train_q4", "alice", conf)
    assert airflow.wait_finished("train_q4", run, 600) == "failed"
    states = airflow.states("train_q4", run)
    assert states["staging.deploy_tr_payments"] == "failed"
    assert states["staging.rollback_tr_identity"] == "success"
    assert states["staging.rollback_tr_web"] == "success"
    assert states["staging.rollback_tr_payments"] == "skipped"  # it rolled itself back
    assert states["prod.enter"] in ("upstream_failed", "skipped")
    new = lines(train)[start:]
    staging = [line for line in new if " staging " in line]
    assert "tr_payments rollback staging 1.0.0" in staging
    assert {line for line in staging if line.endswith(" 1.0.0") and " deploy " in line} == {
        "tr_identity deploy staging 1.0.0",
        "tr_web deploy staging 1.0.0",
    }
    reverts = [r for r in member_runs(airflow, run) if "__revert__" in r["dag_run_id"]]
    assert len(reverts) == 2
    assert {r["state"] for r in reverts} == {"success"}
    log = airflow.log(
        "release_tr_identity",
        next(r for r in reverts if r["dag_id"] == "release_tr_identity")["dag_run_id"],
        "preflight",
    )
    assert "promotion.waived" in log
    report = evidence.fetch(airflow.client("admin"), "train_q4", run)
    assert report["environments"]["staging"]["outcome"] == "rolled_back"
    staging_members = {
        (m["member"], m["purpose"]): (m["outcome"], m["versions"]) for m in report["environments"]["staging"]["members"]
    }
    assert staging_members == {
        ("tr_identity", "stage"): ("success", {"api": "1.1.0"}),
        ("tr_web", "stage"): ("success", {"api": "1.1.0"}),
        ("tr_payments", "stage"): ("failed", {"api": "2.0.0"}),
        ("tr_identity", "revert"): ("success", {"api": "1.0.0"}),
        ("tr_web", "revert"): ("success", {"api": "1.0.0"}),
    }
    assert {v["component"]: (v["source"], v["reference"]) for v in report["versions"]}["tr_web.api"] == (
        "train form",
        "version_tr_web__api",
    )
    assert report["environments"]["dev"]["outcome"] == "succeeded"
    auditor = Person(browser, airflow, "victor", tmp_path)  # a viewer reads the train's evidence in the UI
    try:
        auditor.open(f"/release-console/runs/train_q4/{quote(run, safe='')}/evidence")
        rows = auditor.page.locator("section[data-environment=staging] tr.member").all_inner_texts()
        assert len(rows) == 5
        assert any(row.startswith("tr_payments\tstage\tfailed") for row in rows), rows
        auditor.page.locator("section[data-environment=staging] tr.member a").first.click()
        auditor.page.wait_for_load_state("networkidle")
        assert "Evidence · tr_" in auditor.page.locator("h1").inner_text()  # the member run's own evidence
        auditor.page.go_back()
        auditor.shot("train-evidence")
    finally:
        auditor.context.close()


def test_a_copied_claim_fails_the_run_that_carries_it(airflow, train) -> None:
    """A person who copies a revert run's claim into a run of their own (to skip the promotion rule) is refused
    before anything runs: the claim names another run."""
    runs = airflow.api("GET", "/api/v2/dags/release_tr_identity/dagRuns?limit=100")["dag_runs"]
    revert = next(r for r in runs if "__revert__" in r["dag_run_id"])
    conf = dict(revert["conf"])
    mine = airflow.trigger("release_tr_identity", "alice", conf)
    assert airflow.wait_finished("release_tr_identity", mine, 300) == "failed"
    assert airflow.states("release_tr_identity", mine)["preflight"] == "failed"
    assert "train claim that is not valid (it was made for another run id)" in airflow.log(
        "release_tr_identity", mine, "preflight"
    )
    forged = airflow.trigger("release_tr_identity", "alice", {**conf, "train_claim": conf["train_claim"][:-4] + "AAAA"})
    assert airflow.wait_finished("release_tr_identity", forged, 300) == "failed"
    assert "it does not verify" in airflow.log("release_tr_identity", forged, "preflight")


def _change(airflow, run: str) -> dict[str, Any] | None:
    return next((c for c in _changes(airflow) if run in c["correlation_id"] and c["state"] == "-3"), None)


def _changes(airflow) -> list[dict[str, Any]]:
    """The train's changes (the session's Airflow holds hundreds of other changes)."""
    query = quote("correlation_idSTARTSWITHrelease_mgmt:q4:", safe="")
    return airflow.api("GET", f"/change-service/api/now/table/change_request?sysparm_query={query}")["result"]
