"""The outbox and its sender against real servers on loopback: e-mail through the SMTP provider's hook to an
aiosmtpd server (login, plain text and HTML), webhooks through the HTTP provider's hook to a real HTTP server;
a server that is down or answers 500 costs a bounded number of attempts and ends as a recorded failure; a
message handed over again (a retried task) is sent once; a sender that died mid-send does not lose its message."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from release_mgmt.change_service.outbox import ATTEMPTS, OutboxStore
from release_mgmt.notify.sender import Sender
from tests.helpers import free_port
from tests.servers import Reply

KEY = "a" * 64


class Clock:
    """Time the outbox sees: the tests move it past a backoff instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox(tmp_path: Path, clock: Clock) -> OutboxStore:
    return OutboxStore(create_engine(f"sqlite:///{tmp_path / 'outbox.db'}"), clock=clock)


def message(key: str = KEY, **fields: str) -> dict[str, str]:
    base = {
        "key": key,
        "event": "approval.requested",
        "environment": "prod",
        "channel": "release-mail",
        "kind": "email",
        "connection": "smtp_release",
        "format": "json",
        "recipient": "alice",
        "address": "alice@example.com",
        "subject": "[release_mgmt] Approval needed: shop web 1.2.0 into prod",
        "text": "Approval needed\n\nApprove or reject: http://127.0.0.1:8080/dags/release_shop/runs/r1",
        "html": "<html><body><p><b>Approval needed</b></p><a href='x'>Approve or reject</a></body></html>",
        "payload": json.dumps({"event": "approval.requested", "links": {"Run": "http://127.0.0.1:8080/r"}}),
    }
    return base | fields


def drain_until_settled(sender: Sender, clock: Clock) -> None:
    """Deliver, moving the clock past each backoff, until nothing is due any more."""
    for _ in range(ATTEMPTS + 2):
        sender.drain_once()
        clock.now += 60


def test_an_email_arrives_as_text_and_html_logged_in(outbox, smtp_server, monkeypatch, clock) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_RELEASE", smtp_server.connection())
    assert outbox.enqueue("release_shop", "r1", "prod.gate_approval", [message()]) == ["queued"]
    assert Sender(outbox).drain_once() == 1
    [mail] = smtp_server.wait_for(1)
    assert mail.recipients == ["alice@example.com"]
    assert mail.sender == "release-bot@example.com"
    assert smtp_server.logins == ["release-bot"]
    assert mail.message["Subject"] == "[release_mgmt] Approval needed: shop web 1.2.0 into prod"
    assert mail.message.get_content_type() == "multipart/alternative"
    assert "Approve or reject: http://127.0.0.1:8080/dags/release_shop/runs/r1" in mail.part("plain")
    assert "<a href='x'>Approve or reject</a>" in mail.part("html")
    assert "smtp-s3cret-pw" not in mail.message.as_string()
    [row] = outbox.ledger("release_shop", "r1")
    assert (row["status"], row["attempts"], row["error"]) == ("sent", 1, "")


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (
            "json",
            {"subject": "S", "text": "T", "event": "approval.requested", "links": {"Run": "http://127.0.0.1:8080/r"}},
        ),
        ("slack", {"text": "*S*\nT"}),
        ("teams", {"@type": "MessageCard", "summary": "S", "title": "S", "text": "T"}),
    ],
)
def test_a_webhook_gets_its_format(outbox, http_server, monkeypatch, fmt: str, expected: dict[str, Any]) -> None:
    """The connection's host is the webhook's whole URL (its secret path stays in the connection)."""
    http_server.script("/hooks/T0/B0/s3cretpath", default=Reply(200, "ok"))
    url = f"http://127.0.0.1:{http_server.port}/hooks/T0/B0/s3cretpath"
    monkeypatch.setenv("AIRFLOW_CONN_OPS_WEBHOOK", json.dumps({"conn_type": "http", "host": url}))
    hook = message(kind="webhook", connection="ops_webhook", format=fmt, subject="S", text="T", html="", address="")
    outbox.enqueue("release_shop", "r1", "t", [hook])
    Sender(outbox).drain_once()
    [seen] = http_server.seen
    body = json.loads(seen.body)
    assert {k: body[k] for k in expected} == expected
    assert seen.headers["Idempotency-Key"] == KEY
    assert outbox.ledger("release_shop")[0]["status"] == "sent"


def test_a_server_down_or_answering_500_is_a_bounded_recorded_failure(outbox, http_server, monkeypatch, clock) -> None:
    """Nothing listens on the SMTP port; the webhook answers 500 every time: each message is tried ATTEMPTS
    times, each attempt fails fast, and the ledger says why."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_RELEASE",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": free_port(),
                "extra": {"disable_ssl": True, "disable_tls": True},
            }
        ),
    )
    http_server.script("/hook", default=Reply(500, "boom"))
    monkeypatch.setenv("AIRFLOW_CONN_OPS_WEBHOOK", json.dumps({"conn_type": "http", "host": f"{http_server.url}/hook"}))
    outbox.enqueue("release_shop", "r1", "t", [message(), message("b" * 64, kind="webhook", connection="ops_webhook")])
    started = time.monotonic()
    drain_until_settled(Sender(outbox), clock)
    assert time.monotonic() - started < 30
    mail, hook = outbox.ledger("release_shop", "r1")
    assert (mail["status"], mail["attempts"]) == ("failed", ATTEMPTS)
    assert "ConnectionRefusedError" in mail["error"] or "Connection refused" in mail["error"]
    assert (hook["status"], hook["attempts"]) == ("failed", ATTEMPTS)
    assert hook["error"] == "the webhook answered 500 Internal Server Error"
    assert len(http_server.seen) == ATTEMPTS
    assert not outbox.pending()


def test_a_message_handed_over_three_times_is_sent_once(outbox, smtp_server, monkeypatch, clock) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_RELEASE", smtp_server.connection())
    answers = [outbox.enqueue("release_shop", "r1", "prod.deploy_web", [message()]) for _ in range(3)]
    assert answers == [["queued"], ["duplicate"], ["duplicate"]]
    drain_until_settled(Sender(outbox), clock)
    assert len(smtp_server.wait_for(1)) == 1
    time.sleep(0.3)
    assert len(smtp_server.mails) == 1


def test_a_sender_that_died_mid_send_does_not_lose_the_message(outbox, smtp_server, monkeypatch, clock) -> None:
    """A claimed row whose sender vanished is taken again once it is stale, and sent."""
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_RELEASE", smtp_server.connection())
    outbox.enqueue("release_shop", "r1", "t", [message()])
    assert [m["key"] for m in outbox.claim()] == [KEY]  # claimed by a sender that then died
    assert outbox.claim() == []  # not taken twice while it may still be sending
    clock.now += 300
    assert Sender(outbox).drain_once() == 1
    assert len(smtp_server.wait_for(1)) == 1
    assert outbox.ledger("release_shop")[0]["status"] == "sent"


def test_the_sender_thread_delivers_what_it_is_nudged_about(tmp_path, smtp_server, monkeypatch) -> None:
    """The thread delivers on a nudge, ends once nothing is left (no thread polls an idle or vanished database
    forever), and the next nudge starts another."""
    from release_mgmt.notify import sender as module

    monkeypatch.setattr(module, "IDLE_SECONDS", 0.05)
    monkeypatch.setattr(module, "IDLE_ROUNDS", 3)
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_RELEASE", smtp_server.connection())
    store = OutboxStore(create_engine(f"sqlite:///{tmp_path / 'threaded.db'}"))
    sender = Sender(store)
    store.enqueue("release_shop", "r1", "t", [message()])
    sender.nudge()
    assert len(smtp_server.wait_for(1, seconds=20)) == 1
    deadline = time.monotonic() + 10
    while sender.thread is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sender.thread is None, "an idle sender's thread ends"
    store.enqueue("release_shop", "r1", "t", [message("c" * 64, address="carol@example.com")])
    sender.nudge()
    assert [m.recipients[0] for m in smtp_server.wait_for(2, seconds=20)][-1] == "carol@example.com"


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_senders_of_several_processes_send_each_message_once(
    database, tmp_path, postgres_server, http_server, monkeypatch
):
    """Every API server process has a sender; four draining one outbox at once (on PostgreSQL really side by
    side) deliver each of 60 messages exactly once, and the same key handed over twice is one row."""
    import threading

    http_server.script("/hook", default=Reply(200, "ok"))
    monkeypatch.setenv("AIRFLOW_CONN_OPS_WEBHOOK", json.dumps({"conn_type": "http", "host": f"{http_server.url}/hook"}))
    if database == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'shared.db'}")
    else:
        engine = create_engine(postgres_server.create_database("outbox_race"), pool_size=10)
    store = OutboxStore(engine)
    hooks = [message(f"{i:064x}", kind="webhook", connection="ops_webhook") for i in range(60)]
    assert store.enqueue("release_shop", "r1", "t", hooks) == ["queued"] * 60
    assert store.enqueue("release_shop", "r1", "t", hooks[:5]) == ["duplicate"] * 5
    senders = [Sender(OutboxStore(engine)) for _ in range(4)]
    threads = [threading.Thread(target=s.drain_once) for s in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    keys = [s.headers["Idempotency-Key"] for s in http_server.seen]
    assert sorted(keys) == sorted(m["key"] for m in hooks)
    assert {r["status"] for r in store.ledger("release_shop")} == {"sent"}


def test_a_hand_over_to_a_service_that_is_down_fails_fast(monkeypatch) -> None:
    """The task's hand-over is bounded: nothing listening fails at once, and dispatch turns it into an audit
    line (tests/notify/test_dispatch.py) while the task goes on."""
    import requests

    from release_mgmt.change_service.service_token import TaskIdentity
    from release_mgmt.notify.outbox import hand_over

    monkeypatch.setenv("RELEASE_MGMT_SERVICE_SECRET", "s" * 40)
    monkeypatch.setenv("RELEASE_MGMT_CHANGE_SERVICE_URL", f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        hand_over(TaskIdentity("release_shop", "r1", "prod.deploy_api"), [message()])
    assert time.monotonic() - started < 5
