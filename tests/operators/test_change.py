"""Change records end to end with dag.test(): the built-in service over real HTTP, authorized by a CAB member
while the run waits (deferred), closed with the outcome."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import pytest

from release_mgmt.change_service.app import create_app
from release_mgmt.change_service.callers import basic_auth
from release_mgmt.change_service.store import ChangeStore
from release_mgmt.dag.builder import build_release_dags
from release_mgmt.reports import evidence
from tests.helpers import command, minimal_definition, write_definition
from tests.release_runs import audit_records, states, use_releases
from tests.servers import serve_app

pytestmark = pytest.mark.e2e
#: release-bot: the connection's integration user; mallory: another integration user of the same instance
USERS = {"release-bot": ("pw", "release_task"), "mallory": ("mal", "release_task"), "cab": ("cab", "viewer")}


@pytest.fixture
def changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The change service on loopback; Airflow connection `snow` logs in as release-bot."""
    store = ChangeStore(f"sqlite:///{tmp_path / 'changes.db'}")
    with serve_app(create_app(store, basic_auth(USERS))) as url:
        host, port = url.removeprefix("http://").split(":")
        monkeypatch.setenv(
            "AIRFLOW_CONN_SNOW",
            json.dumps(
                {"conn_type": "http", "host": host, "port": int(port), "login": "release-bot", "password": "pw"}
            ),
        )
        yield store


def _cab(store: ChangeStore, approve: bool) -> threading.Thread:
    """A CAB member who decides on the first change waiting for authorization."""

    def decide() -> None:
        for _ in range(300):
            waiting = store.query([("state", "=", "-3")], 1)
            if waiting:
                store.decide(waiting[0]["sys_id"], approve, "cab", "looked at it")
                return
            time.sleep(0.1)

    thread = threading.Thread(target=decide, daemon=True)
    thread.start()
    return thread


def _release(tmp_path: Path, monkeypatch, name: str, check: str = "true", deploy: dict | None = None):
    journal = tmp_path / "journal"
    data = minimal_definition(
        name,
        environments=[
            {"name": "dev"},
            {
                "name": "prod",
                "change": {
                    "type": "normal",
                    "connection": "snow",
                    "poll": "1s",
                    "authorization_timeout": "60s",  # a test that goes wrong fails instead of waiting days
                    "assignment_group": "release-managers",
                    "authorizers": {"users": ["cab", "cab-deputy"]},
                },
            },
        ],
    )
    data["components"][0]["current_version"] = command("echo 0.9.0")
    data["components"][0]["deploy"] = deploy or command(f"echo {{{{ environment }}}} >> {journal}")
    data["components"][0]["validate"] = [command(check)]
    write_definition(tmp_path / "releases", f"{name}.yaml", data)
    use_releases(tmp_path / "releases", monkeypatch)
    return build_release_dags(tmp_path / "releases")[f"release_{name}"], journal


def test_prod_waits_for_authorization_and_closes_successful(tmp_path, monkeypatch, airflow_db, changes, capfd) -> None:
    """The change is opened before anything in prod, authorized by the CAB, implemented, closed successful; every
    audit line of prod's deploy and checks names the change they ran under (dev's name none)."""
    dag, journal = _release(tmp_path, monkeypatch, "chg_ok")
    cab = _cab(changes, approve=True)
    run = dag.test()
    cab.join(timeout=5)
    assert str(run.state) == "success"
    [change] = changes.query([], 10)
    assert (change["state"], change["close_code"], change["approval"]) == ("3", "successful", "approved")
    assert change["correlation_id"] == f"release_mgmt:chg_ok:prod:{run.run_id}"
    assert change["short_description"] == "Release chg_ok to prod: api 1.0.0"
    assert "- api: run `echo prod >>" in change["implementation_plan"]  # what ran, not the template
    notes = changes.get(change["sys_id"])["work_notes"]
    assert "Change approved by cab" in notes
    assert f"Deployment by Airflow run {run.run_id} starts." in notes
    assert f"deploy of api 1.0.0: succeeded (Airflow run {run.run_id}, task prod.deploy_api)" in notes
    assert "validate of api 1.0.0: succeeded" in notes
    assert "dev.deploy_api" not in notes  # dev has no change request
    assert journal.read_text().split() == ["dev", "prod"]
    notes = change["close_notes"]
    assert notes.startswith("prod: succeeded.\nVersions: api 1.0.0.")
    assert f"Full report: python -m release_mgmt audit release_chg_ok {run.run_id}" in notes
    summary, digest = notes.split("Evidence (sha256 of ")[1].split("\n")[0].rsplit("): ", 1)
    assert hashlib.sha256(summary.encode()).hexdigest() == digest  # anyone can re-check the digest
    records = audit_records(capfd.readouterr().out)
    work = [r for r in records if r["event"].split(".")[0] in ("deploy", "validate")]
    assert {(r["environment"], r["change"]) for r in work} == {("dev", ""), ("prod", change["number"])}
    recorded = [r for r in records if r["event"] == "deployment.recorded"]
    assert len(recorded) == 2
    assert all(r["change"] == (change["number"] if r["environment"] == "prod" else "") for r in recorded)


def test_failed_validation_closes_unsuccessful_after_rollback(tmp_path, monkeypatch, airflow_db, changes) -> None:
    """A prod validation failure rolls back and closes the change unsuccessful, saying so."""
    dag, _ = _release(tmp_path, monkeypatch, "chg_bad", check='test "{{ environment }}" != prod')
    _cab(changes, approve=True)
    run = dag.test()
    assert str(run.state) == "failed"
    assert states(run)["prod.rollback_api"] == "success"
    [change] = changes.query([], 10)
    assert (change["state"], change["close_code"]) == ("3", "unsuccessful")
    assert "rolled back: api" in change["close_notes"]
    assert "validate of api 1.0.0: FAILED" in change["work_notes"]
    assert "rollback of api 1.0.0: succeeded" in change["work_notes"]


def test_rejected_change_deploys_nothing_to_prod(tmp_path, monkeypatch, airflow_db, changes) -> None:
    """The CAB rejects: prod is never deployed, the run fails, the change stays canceled."""
    dag, journal = _release(tmp_path, monkeypatch, "chg_no")
    _cab(changes, approve=False)
    run = dag.test()
    got = states(run)
    assert str(run.state) == "failed"
    assert got["prod.change_authorized"] == "failed"
    assert got["prod.deploy_api"] == "upstream_failed"
    assert journal.read_text().split() == ["dev"]
    [change] = changes.query([], 10)
    assert (change["state"], change["approval"]) == ("4", "rejected")


@pytest.mark.faults
def test_lost_answer_to_the_create_leaves_one_change(tmp_path, monkeypatch, airflow_db, changes) -> None:
    """The service commits the create but the answer is dropped: the run succeeds with exactly one change."""
    import os

    from tests.servers import FaultProxy

    conn = json.loads(os.environ["AIRFLOW_CONN_SNOW"])
    with FaultProxy(conn["port"]) as proxy:
        proxy.plan = ["pass", "drop", "500"]  # look-up passes, the create's answer is lost, then a 500
        monkeypatch.setenv("AIRFLOW_CONN_SNOW", json.dumps(conn | {"port": proxy.port}))
        dag, _ = _release(tmp_path, monkeypatch, "chg_faults")
        _cab(changes, approve=True)
        run = dag.test()
    assert str(run.state) == "success"
    [change] = changes.query([], 10)
    assert change["close_code"] == "successful"
    assert [m for m, _, _ in proxy.seen].count("POST") == 1
    assert "deploy of api 1.0.0: succeeded" in change["work_notes"]  # no work note lost to the faults


def _mallory_opens_the_runs_change(changes: ChangeStore, dag_id: str, opened: Path) -> threading.Thread:
    """Another user who, once the run exists, opens a standard change under its prod correlation id and
    schedules it (then lets dev's deploy finish by creating ``opened``)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    def act() -> None:
        for _ in range(600):
            with create_session() as session:
                run_id = session.scalar(select(DagRun.run_id).where(DagRun.dag_id == dag_id))
            if run_id:
                key = f"release_mgmt:chg_foreign:prod:{run_id}"
                fields = {"type": "standard", "correlation_id": key, "short_description": "x"}
                foreign = changes.create(fields, "mallory")
                changes.update(foreign["sys_id"], {"state": "-2"}, "mallory")
                opened.write_text(foreign["number"])
                return
            time.sleep(0.05)

    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    return thread


def test_a_change_someone_else_opened_under_the_runs_id_is_not_adopted(
    tmp_path, monkeypatch, airflow_db, changes, capfd
) -> None:
    """Row 2: another user opens a pre-approved standard change with the run's correlation id and schedules it
    before the run reaches prod: change_open refuses it, names it and its creator, and prod deploys nothing."""
    opened, journal = tmp_path / "mallory_opened", tmp_path / "journal"
    wait_then_deploy = command(
        f"while [ ! -s {opened} ]; do sleep 0.1; done; echo {{{{ environment }}}} >> {journal}", timeout_seconds=60
    )
    dag, _ = _release(tmp_path, monkeypatch, "chg_foreign", deploy=wait_then_deploy)
    mallory = _mallory_opens_the_runs_change(changes, dag.dag_id, opened)
    run = dag.test()
    mallory.join(timeout=5)
    got = states(run)
    assert got["prod.change_open"] == "failed"
    assert got["prod.deploy_api"] in ("upstream_failed", "skipped")
    assert journal.read_text().split() == ["dev"]
    [change] = changes.query([], 10)  # nothing else was opened
    assert (change["number"], change["sys_created_by"], change["state"]) == (opened.read_text(), "mallory", "-2")
    [record] = [r for r in audit_records(capfd.readouterr().out) if r["event"] == "change.foreign"]
    assert (record["change"], record["details"]["created_by"]) == (change["number"], "mallory")
    assert "it was created by mallory, not release-bot" in record["details"]["problems"]
    assert "it is a standard change, not normal" in record["details"]["problems"]


CANARY_PASSWORD = "canary-db-password-7f3a91c2"
CANARY_KEY = "canary-api-key-0d44e1b9"


def test_secrets_printed_by_a_failing_step_stay_out_of_the_change(
    tmp_path, monkeypatch, airflow_db, changes, capfd
) -> None:
    """Row 4: a connection password and a masked variable printed by a failing step appear nowhere in the change
    (description, work notes, close notes, approvals) or the evidence built from the run's audit lines. (dag.test
    echoes the step's raw output to the console, as the LocalExecutor's scheduler does: test_secret_canary.py
    checks the real task logs, the REST API and the CLI on a real Airflow.)"""
    monkeypatch.setenv(
        "AIRFLOW_CONN_CANARY_DB",
        json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "login": "app", "password": CANARY_PASSWORD}),
    )
    monkeypatch.setenv("AIRFLOW_VAR_CANARY_API_KEY", CANARY_KEY)
    leak = command(
        'echo "connecting with $DB_PW and $API_KEY"; test "{{ environment }}" != prod',
        env={"DB_PW": "{{ conn.canary_db.password }}", "API_KEY": "{{ var.value.canary_api_key }}"},
    )
    dag, _ = _release(tmp_path, monkeypatch, "chg_secret", deploy=leak)
    _cab(changes, approve=True)
    run = dag.test()
    assert states(run)["prod.deploy_api"] == "failed"
    [change] = changes.query([], 10)
    assert change["close_code"] == "unsuccessful"
    assert "deploy of api 1.0.0: FAILED" in change["work_notes"]
    assert "connecting with *** and ***" in change["work_notes"]  # the step's output line, masked
    records = audit_records(capfd.readouterr().out)
    assert any(r["event"] == "deploy.finished" and r["outcome"] == "failed" for r in records)
    sinks = {
        "change": json.dumps(change),
        "approvals": json.dumps(changes.approvals(change_sys_id=change["sys_id"])),
        "evidence": json.dumps(evidence.build({"dag_id": dag.dag_id, "run_id": run.run_id}, [], records)),
    }
    for name, text in sinks.items():
        for secret in (CANARY_PASSWORD, CANARY_KEY):
            assert secret not in text, f"{secret} leaked into the {name}"


@pytest.mark.faults
def test_a_change_whose_open_task_failed_is_found_and_canceled(tmp_path, monkeypatch, airflow_db, changes) -> None:
    """Issue 16, row 3: the change is created, then change_open fails (its next call refused), so its answer never
    reaches XCom: change_close finds the run's change by its correlation id and cancels it instead of leaving it
    waiting for authorization forever."""
    import os

    from tests.servers import FaultProxy

    conn = json.loads(os.environ["AIRFLOW_CONN_SNOW"])
    with FaultProxy(conn["port"]) as proxy:
        proxy.plan = ["pass", "pass", "409"]  # look-up, create; then the next call is refused
        monkeypatch.setenv("AIRFLOW_CONN_SNOW", json.dumps(conn | {"port": proxy.port}))
        dag, journal = _release(tmp_path, monkeypatch, "chg_lost")
        run = dag.test()
    got = states(run)
    assert got["prod.change_open"] == "failed"
    assert got["prod.change_close"] == "success"
    assert journal.read_text().split() == ["dev"]
    [change] = changes.query([], 10)
    assert change["state"] == "4"  # canceled, not left in New or Authorize
    assert "Canceled: the run stopped before deploying" in change["work_notes"]


@pytest.mark.faults
def test_a_work_note_the_change_system_refuses_is_queued_and_written_late(
    tmp_path, monkeypatch, airflow_db, changes, capfd
) -> None:
    """Issue 16, rows 5 and 7: the change system refuses the "deploy succeeded" note (an outage is retried for 30 s
    first, tests/hooks/test_servicenow.py). The deploy does not fail (no rollback of a good deploy); the note is
    queued and change_close writes it."""
    import os

    from tests.servers import FaultProxy

    conn = json.loads(os.environ["AIRFLOW_CONN_SNOW"])
    gate = tmp_path / "go"
    with FaultProxy(conn["port"]) as proxy:
        monkeypatch.setenv("AIRFLOW_CONN_SNOW", json.dumps(conn | {"port": proxy.port}))
        deploy = command(f"echo {{{{ environment }}}} >> {tmp_path}/journal; until [ -f {gate} ]; do sleep 0.1; done")
        dag, journal = _release(tmp_path, monkeypatch, "chg_note", deploy=deploy)
        _cab(changes, approve=True)

        def outage_during_prods_deploy() -> None:
            for _ in range(1200):
                if journal.exists() and journal.read_text().split() == ["dev"]:
                    gate.write_text("dev")  # dev has no change: let it through
                if journal.exists() and "prod" in journal.read_text().split():
                    proxy.plan = ["409"]  # the note
                    gate.write_text("prod")
                    return
                time.sleep(0.05)

        threading.Thread(target=outage_during_prods_deploy, daemon=True).start()
        run = dag.test()
    got = states(run)
    assert str(run.state) == "success", got
    assert got["prod.deploy_api"] == "success"
    assert got["prod.rollback_api"] == "skipped"
    [change] = changes.query([], 10)
    assert change["close_code"] == "successful"
    notes = changes.get(change["sys_id"])["work_notes"]
    assert f"deploy of api 1.0.0: succeeded (Airflow run {run.run_id}, task prod.deploy_api) [written late" in notes
    assert notes.count("deploy of api 1.0.0: succeeded") == 1
    queued = [r for r in audit_records(capfd.readouterr().out) if r["event"] == "change.note_queued"]
    assert [r["environment"] for r in queued] == ["prod"]
