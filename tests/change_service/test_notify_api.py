"""The outbox over HTTP: only a release task hands over messages, for its own run (the run comes from its token,
never the body); the same task handing the same message over on each of three tries sends one e-mail; the
ledger is readable by those who may read the release, and never holds a message's body; bad input is a 400 in
the service's error shape, never a 500."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from release_mgmt.change_service.app import create_app
from release_mgmt.change_service.callers import basic_auth
from release_mgmt.change_service.service_token import TaskIdentity, make_token
from release_mgmt.change_service.store import ChangeStore
from tests.notify.test_delivery import message
from tests.servers import serve_app

NOTIFICATIONS = "/api/release_mgmt/notifications"


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RELEASE_MGMT_SERVICE_SECRET", "s" * 40)
    store = ChangeStore(f"sqlite:///{tmp_path / 'changes.db'}")
    users = {"alice": ("alice-pass", "admin"), "bot": ("bot-pass", "release_task")}
    with serve_app(create_app(store, basic_auth(users))) as url:
        yield url


def task(run: str = "r1", dag: str = "release_shop", task_id: str = "prod.gate_approval") -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(TaskIdentity(dag, run, task_id))}"}


def test_three_tries_of_a_task_send_one_mail(service: str, smtp_server, monkeypatch) -> None:
    """Each try hands the same keyed message over; the first is queued, the others are duplicates; one mail."""
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_RELEASE", smtp_server.connection())
    body: dict[str, Any] = {"messages": [message()], "dag_id": "release_forged", "run_id": "forged"}
    statuses = []
    for _ in range(3):
        answer = requests.post(service + NOTIFICATIONS, json=body, headers=task(), timeout=10)
        assert answer.status_code == 200, answer.text
        statuses += [r["status"] for r in answer.json()["result"]]
    assert statuses == ["queued", "duplicate", "duplicate"]
    assert len(smtp_server.wait_for(1)) == 1
    ledger = requests.get(service + NOTIFICATIONS, params={"dag_id": "release_shop"}, headers=task(), timeout=10)
    [row] = ledger.json()["result"]
    assert (row["dag_id"], row["run_id"], row["task_id"]) == ("release_shop", "r1", "prod.gate_approval")  # the token's
    assert "text" not in row
    assert "html" not in row
    assert "Approve or reject" not in json.dumps(row)


def test_only_a_task_bound_to_a_run_hands_messages_over(service: str) -> None:
    body = {"messages": [message()]}
    admin = requests.post(service + NOTIFICATIONS, json=body, auth=("alice", "alice-pass"), timeout=10)
    assert admin.status_code == 403
    unbound = requests.post(service + NOTIFICATIONS, json=body, auth=("bot", "bot-pass"), timeout=10)
    assert unbound.status_code == 403
    assert "release tasks" in unbound.json()["error"]["detail"]
    anonymous = requests.post(service + NOTIFICATIONS, json=body, timeout=10)
    assert anonymous.status_code == 401


def test_a_task_reads_only_its_own_release_ledger(service: str) -> None:
    requests.post(service + NOTIFICATIONS, json={"messages": [message()]}, headers=task(), timeout=10)
    other = requests.get(service + NOTIFICATIONS, params={"dag_id": "release_shop"}, headers=task(dag="release_x"))
    assert other.status_code == 403
    admin = requests.get(service + NOTIFICATIONS, params={"dag_id": "release_shop"}, auth=("alice", "alice-pass"))
    assert [r["event"] for r in admin.json()["result"]] == ["approval.requested"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"messages": "x"},
        {"messages": []},
        {"messages": [message(str(i).rjust(64, "0")) for i in range(101)]},
        {"messages": ["x"]},
        {"messages": [message("not-a-sha")]},
        {"messages": [message(kind="pigeon")]},
        {"messages": [message(connection="")]},
        {"messages": [message(subject="s" * 301)]},
        {"messages": [message(text="\ud800")]},
        {"messages": [message(text="nul\x00")]},
        {"messages": [{**message(), "attempts": 0, "text": ["a list"]}]},
        [1, 2],
    ],
)
def test_bad_hand_overs_are_400s(service: str, body: object) -> None:
    answer = requests.post(service + NOTIFICATIONS, data=json.dumps(body), headers=task(), timeout=10)
    assert answer.status_code == 400, answer.text
    assert answer.json()["status"] == "failure"


def test_the_ledger_needs_a_release(service: str) -> None:
    answer = requests.get(service + NOTIFICATIONS, headers=task(), timeout=10)
    assert answer.status_code == 400


def test_a_restarted_service_sends_what_its_predecessor_left(tmp_path: Path, smtp_server, monkeypatch) -> None:
    """Messages queued (and one claimed mid-send) by a process that died are sent once a new process serves its
    first request of any kind; nothing is sent twice."""
    from sqlalchemy import create_engine

    from release_mgmt.change_service.outbox import OutboxStore

    monkeypatch.setenv("RELEASE_MGMT_SERVICE_SECRET", "s" * 40)
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_RELEASE", smtp_server.connection())
    url = f"sqlite:///{tmp_path / 'changes.db'}"
    old = OutboxStore(create_engine(url), clock=lambda: 1_000.0)  # the dead process, long ago (STALE_SECONDS)
    old.enqueue("release_shop", "r1", "t", [message(), message("b" * 64, address="bob@example.com")])
    assert len(old.claim(limit=1)) == 1  # it died while sending the first
    with serve_app(create_app(ChangeStore(url), basic_auth({"alice": ("alice-pass", "admin")}))) as service:
        assert requests.get(service + "/api/release_mgmt/locks", auth=("alice", "alice-pass"), timeout=10).ok
        mails = smtp_server.wait_for(2, seconds=20)
    assert sorted(m.recipients[0] for m in mails) == ["alice@example.com", "bob@example.com"]
