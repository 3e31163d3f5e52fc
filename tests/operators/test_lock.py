"""The lock and unlock tasks end to end with dag.test(), against the built-in service over real HTTP (the
way release tasks reach it inside Airflow: its URL and a service token): waiting in line until the holder
gives the lock back, and giving up after lock_timeout without blocking the runs behind."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from fastapi import HTTPException, Request

from release_mgmt.change_service.app import create_app
from release_mgmt.change_service.contract import Holder
from release_mgmt.change_service.in_airflow import airflow_run_state
from release_mgmt.change_service.locks import LockStore
from release_mgmt.change_service.permissions import Caller
from release_mgmt.change_service.service_token import check_token
from release_mgmt.change_service.store import ChangeStore
from release_mgmt.dag.builder import build_release_dags
from release_mgmt.operators.deploy import DeployOperator
from tests.helpers import command, minimal_definition, write_definition
from tests.release_runs import audit_records, states, use_releases
from tests.servers import Reply, serve_app

pytestmark = pytest.mark.e2e
OTHER = Holder("release_other", "r0", "prod")


def _service_token_user(request: Request) -> Caller:
    header = request.headers.get("Authorization", "")
    task = check_token(header[7:]) if header.startswith("Bearer ") else None
    if task is None:
        raise HTTPException(401, detail="User Not Authenticated")
    return Caller.release_task(task)


@pytest.fixture
def locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The built-in service on loopback, reached as inside Airflow; yields its lock store."""
    monkeypatch.setenv("RELEASE_MGMT_SERVICE_SECRET", "lock-test-secret-" + "x" * 32)
    store = ChangeStore(f"sqlite:///{tmp_path / 'service.db'}")
    with serve_app(create_app(store, _service_token_user)) as url:
        monkeypatch.setenv("RELEASE_MGMT_CHANGE_SERVICE_URL", url)
        yield LockStore(store.engine)


def _dag(tmp_path: Path, monkeypatch, name: str, journal: Path, lock_timeout: str) -> Any:
    data = minimal_definition(
        name, environments=[{"name": "prod", "lock": "shared-prod", "lock_timeout": lock_timeout}]
    )
    data["components"][0]["deploy"] = command(f"date +%s.%N > {journal}")
    write_definition(tmp_path / "releases", f"{name}.yaml", data)
    use_releases(tmp_path / "releases", monkeypatch)
    return build_release_dags(tmp_path / "releases")[f"release_{name}"]


def _run(tmp_path: Path, monkeypatch, name: str, journal: Path, lock_timeout: str) -> Any:
    return _dag(tmp_path, monkeypatch, name, journal, lock_timeout).test()


def test_waits_in_line_and_deploys_once_the_holder_gives_back(tmp_path, monkeypatch, airflow_db, locks, capfd) -> None:
    """Another release holds prod's shared lock; this run waits (deferred), then deploys after it is given back."""
    assert locks.acquire("shared-prod", OTHER)["granted"]
    given_back: list[float] = []

    def give_back() -> None:
        given_back.append(time.time())
        locks.release("shared-prod", OTHER)

    dag = _dag(tmp_path, monkeypatch, "waits_for_lock", tmp_path / "deployed_at", "5m")
    waiter = _when_in_line(locks, "release_waits_for_lock", 2.0, give_back)
    run = dag.test()
    waiter.join(5)
    assert str(run.state) == "success"
    assert float((tmp_path / "deployed_at").read_text()) > given_back[0]
    records = audit_records(capfd.readouterr().out)
    waiting = next(r for r in records if r["event"] == "lock.waiting")
    assert (waiting["details"]["held_by"]["dag_id"], waiting["details"]["position"]) == ("release_other", 1)
    acquired = next(r for r in records if r["event"] == "lock.acquired")
    assert acquired["details"]["waited_seconds"] > 0
    assert datetime.fromisoformat(acquired["details"]["granted_on"]).timestamp() >= given_back[0]
    assert [r["event"] for r in records if r["event"] == "lock.released"] == ["lock.released"]
    assert locks.status("shared-prod")[0]["holder"] is None


def _when_in_line(locks: LockStore, dag_id: str, seconds: float, then: Any) -> threading.Thread:
    """Call ``then`` once ``dag_id``'s run has waited ``seconds`` in line for shared-prod (however long the run
    took to get there)."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(q["dag_id"] == dag_id for q in locks.status("shared-prod")[0]["queue"]):
                time.sleep(seconds)
                then()
                return
            time.sleep(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_gives_up_after_lock_timeout_and_leaves_the_queue(tmp_path, monkeypatch, airflow_db, locks, capfd) -> None:
    """The holder never gives back: the run fails after lock_timeout naming the holder, deploys nothing, and
    its request leaves the queue so runs behind it are not held up."""
    assert locks.acquire("shared-prod", OTHER)["granted"]
    journal = tmp_path / "deployed_at"
    run = _run(tmp_path, monkeypatch, "lock_times_out", journal, "3s")
    assert str(run.state) == "failed"
    found = states(run)
    assert (found["prod.lock"], found["prod.deploy_api"]) == ("failed", "upstream_failed")
    assert not journal.exists()
    out = capfd.readouterr().out
    assert "lock shared-prod not granted within 3s; held by release_other run r0 (prod)" in out
    assert "prod: FAILED (lock failed)" in out
    status = locks.status("shared-prod")[0]
    assert (status["holder"]["run_id"], status["queue"]) == ("r0", [])
    mine = next(h for h in locks.history("shared-prod") if h["dag_id"] == "release_lock_times_out")
    assert mine["released_why"] == "withdrawn while waiting: gave up waiting: timeout"


def test_the_service_reads_run_states_from_airflows_database(tmp_path, monkeypatch, airflow_db, locks) -> None:
    """How the service inside Airflow tells a live holder from a dead one: the run's state in Airflow's database."""
    run = _run(tmp_path, monkeypatch, "state_probe", tmp_path / "deployed_at", "1m")
    assert airflow_run_state("release_state_probe", run.run_id) == "success"
    assert airflow_run_state("release_state_probe", "no-such-run") is None


def test_a_deploy_run_again_deploys_only_while_its_run_holds_the_lock(locks) -> None:
    """A deploy cleared and run again after its run gave the lock back: refused while another run holds the
    lock (without staying in line), taken back when the lock is free."""
    deploy = DeployOperator(
        task_id="deploy_api",
        release="shop",
        components=["api"],
        environments=["prod"],
        environment="prod",
        component="api",
        steps=[],
        variables={},
        workdir=".",
        lock="shared-prod",
    )
    ti = SimpleNamespace(dag_id="release_shop", task_id="prod.deploy_api")
    context: Any = {"ti": ti, "run_id": "r1"}  # as in a DAG
    locks.acquire("shared-prod", OTHER)
    with pytest.raises(AirflowFailException, match=r"held by release_other run r0 \(prod\)"):
        deploy._check_lock(context)
    assert locks.status("shared-prod")[0]["queue"] == []
    locks.release("shared-prod", OTHER)
    deploy._check_lock(context)
    assert locks.status("shared-prod")[0]["holder"]["run_id"] == "r1"


def test_a_long_wait_for_the_lock_is_told_once(tmp_path, monkeypatch, airflow_db, locks, http_server, capfd) -> None:
    """lock_notice 2s: the run still in line after 2 s tells lock.waiting_long (routed to the team's webhook,
    delivered by the service's outbox), goes on waiting and deploys once the holder gives back."""
    import json

    http_server.script("/hooks/ops", default=Reply(200, "ok"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_OPS_WEBHOOK", json.dumps({"conn_type": "http", "host": f"{http_server.url}/hooks/ops"})
    )
    (tmp_path / "directory.yaml").write_text(
        "channels:\n  ops-chat: {connection: ops_webhook, kind: webhook}\nusers: {}\n"
    )
    assert locks.acquire("shared-prod", OTHER)["granted"]
    data = minimal_definition(
        "long_wait", environments=[{"name": "prod", "lock": "shared-prod", "lock_timeout": "5m", "lock_notice": "2s"}]
    )
    data["notify"] = [{"events": ["lock.waiting_long"], "channels": ["ops-chat"]}]
    write_definition(tmp_path / "releases", "long_wait.yaml", data)
    use_releases(tmp_path / "releases", monkeypatch)
    dag = build_release_dags(tmp_path / "releases")["release_long_wait"]
    waiter = _when_in_line(locks, "release_long_wait", 6.0, lambda: locks.release("shared-prod", OTHER))
    run = dag.test()
    waiter.join(5)
    assert str(run.state) == "success"
    records = audit_records(capfd.readouterr().out)
    [long_wait] = [r for r in records if r["event"] == "lock.waiting_long"]
    assert (long_wait["details"]["waited_minutes"], long_wait["details"]["held_by"]["dag_id"]) == (0.0, "release_other")
    [sent] = [r for r in records if r["event"] == "notify.sent"]
    assert sent["details"]["notification"] == "lock.waiting_long"
    [post] = [json.loads(s.body) for s in http_server.seen]
    assert post["subject"].startswith("[release_mgmt] long_wait has waited")
    assert "lock shared-prod in prod" in post["subject"]
