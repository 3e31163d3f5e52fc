"""Notifications on a real Airflow, to a real SMTP server (aiosmtpd) and a real webhook receiver on loopback: the
sample release's successful, rejected and rolled-back runs deliver exactly the expected messages to the expected
people with the expected links; a mail server that is down and a webhook answering 500 change nothing about how
a release runs (the failures are audit lines); a rollback retried three times tells its failure once."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from release_mgmt.records.audit import records_from_log
from tests.e2e.test_console_browser import Person
from tests.helpers import command, free_port, minimal_definition, write_definition
from tests.operators.test_approval import GATE, _wait_open
from tests.release_runs import gated_sample, stop_sample
from tests.servers import Reply, ScriptedHTTP, SMTPServer

pytestmark = pytest.mark.e2e

DIRECTORY = {
    "channels": {
        "release-mail": {"connection": "notify_smtp", "kind": "email"},
        "ops-chat": {"connection": "notify_webhook", "kind": "webhook", "format": "json"},
        "down-mail": {"connection": "notify_smtp_down", "kind": "email"},
        "broken-chat": {"connection": "notify_webhook_broken", "kind": "webhook", "format": "slack"},
    },
    "users": {
        "alice": {"name": "Alice", "email": "alice@example.com", "chat": "@alice"},
        "bob": {"name": "Bob", "email": "bob@example.com", "chat": "@bob"},
    },
}


class Mailroom:
    """The SMTP server and webhook receiver the session's Airflow sends to."""

    def __init__(self, smtp: SMTPServer, hooks: ScriptedHTTP) -> None:
        self.smtp, self.hooks = smtp, hooks

    def mails(self, run_id: str) -> list[tuple[str, str, str]]:
        """(recipient, subject, plain text) of the e-mails about ``run_id``."""
        return sorted(
            (m.recipients[0], str(m.message["Subject"]), m.part("plain"))
            for m in self.smtp.mails
            if quote(run_id, safe="") in m.part("plain")
        )

    def posts(self, run_id: str) -> list[dict[str, Any]]:
        """The webhook bodies about ``run_id``."""
        found = [json.loads(s.body) for s in self.hooks.seen if s.path == "/hooks/ops"]
        return [b for b in found if b.get("run_id") == run_id]

    def settle(self, run_id: str, want_posts: int, want_mails: int, seconds: float = 60) -> None:
        """Wait for the expected count, then a little longer (nothing more may arrive)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and (
            len(self.posts(run_id)) < want_posts or len(self.mails(run_id)) < want_mails
        ):
            time.sleep(0.2)
        time.sleep(3)


@pytest.fixture(scope="module")
def mailroom(airflow):
    with SMTPServer() as smtp, ScriptedHTTP() as hooks:
        hooks.script("/hooks/ops", default=Reply(200, "ok"))
        hooks.script("/hooks/broken", default=Reply(500, "boom"))
        smtp_conn = json.loads(smtp.connection())
        connections = {
            "notify_smtp": smtp_conn,
            "notify_smtp_down": {**smtp_conn, "port": free_port()},
            "notify_webhook": {"conn_type": "http", "host": f"{hooks.url}/hooks/ops"},
            "notify_webhook_broken": {"conn_type": "http", "host": f"{hooks.url}/hooks/broken"},
        }
        for conn_id, conn in connections.items():
            body = {**conn, "connection_id": conn_id, "extra": json.dumps(conn.get("extra") or {})}
            airflow.request("DELETE", f"/api/v2/connections/{conn_id}", "admin")
            airflow.api("POST", "/api/v2/connections", "admin", body)
        (airflow.releases.parent / "directory.yaml").write_text(yaml.safe_dump(DIRECTORY))
        yield Mailroom(smtp, hooks)


@pytest.fixture(scope="module")
def sample_notify(airflow, mailroom, tmp_path_factory):
    """The sample release with routing: approvers and authorizers by mail in prod, the team's chat for outcomes."""
    root = tmp_path_factory.mktemp("notify-envs")
    data, ports = gated_sample(root)
    data["name"] = "sample_notify"
    data["notify"] = [
        {
            "events": ["environment.succeeded", "validation.failed", "rollback.*", "run.*", "change.authorized"],
            "channels": ["ops-chat"],
            "to": ["triggered_by"],
        },
        {"events": ["approval.rejected"], "channels": ["release-mail"], "to": ["triggered_by"]},
    ]
    prod = data["environments"][2]
    prod["notify"] = [
        {"events": ["approval.requested"], "channels": ["release-mail"], "to": ["approvers"]},
        {"events": ["change.awaiting_authorization"], "channels": ["release-mail"], "to": ["authorizers"]},
    ]
    write_definition(airflow.releases, "sample_notify.yaml", data)
    airflow.wait_for(lambda: airflow.dag_ready("release_sample_notify"), 120, "the notifying sample's DAG")
    yield "release_sample_notify"
    stop_sample(root, ports)


def _events(posts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((p["event"], p["environment"]) for p in posts)


def _change(airflow, run: str) -> dict[str, Any]:
    found = airflow.api("GET", "/change-service/api/now/table/change_request?sysparm_query=state=-3")["result"]
    return next(c for c in found if run in c["correlation_id"])


def test_a_successful_run_tells_approvers_authorizers_and_the_team(airflow, mailroom, sample_notify) -> None:
    dag = sample_notify
    run = airflow.trigger(dag, "alice", {"version_web": "1.3.0"})
    _wait_open(airflow, dag, run, "the request")
    assert airflow.answer(dag, run, GATE, user="bob", option="Approve", comment="staging is green")[0] == 200
    airflow.wait_state(dag, run, "prod.change_authorized", "deferred")
    change = _change(airflow, run)
    airflow.api("POST", f"/change-service/api/release_mgmt/change_request/{change['sys_id']}/approve", "bob", {})
    assert airflow.wait_finished(dag, run) == "success"
    mailroom.settle(run, want_posts=5, want_mails=2)

    mails = mailroom.mails(run)
    # alice triggered the run: she may neither approve nor authorize it, so only bob is asked, once each
    assert [(to, subject) for to, subject, _ in mails] == [
        ("bob@example.com", "[release_mgmt] Approval needed: sample_notify web 1.3.0 into prod"),
        (
            "bob@example.com",
            f"[release_mgmt] Change {change['number']} awaits authorization: sample_notify web 1.3.0 into prod",
        ),
    ]
    run_url = f"{airflow.url}/dags/{dag}/runs/{quote(run, safe='')}"
    approval_text = mails[0][2]
    assert f"Approve or reject: {run_url}/tasks/{GATE}/required_actions" in approval_text
    assert "Triggered by: alice" in approval_text
    assert f"Change: {airflow.url}/release-console/changes/{change['sys_id']}" in mails[1][2]
    posts = mailroom.posts(run)
    assert _events(posts) == [
        ("change.authorized", "prod"),
        ("environment.succeeded", "dev"),
        ("environment.succeeded", "prod"),
        ("environment.succeeded", "staging"),
        ("run.succeeded", ""),
    ]
    assert all(p["mentions"] == "@alice" and p["versions"] == {"web": "1.3.0"} for p in posts)
    assert all(p["links"]["Run"] == run_url for p in posts)
    # the summary wrote how each notification it could see went
    summary = records_from_log(airflow.log(dag, run, "summary"))[0]
    sent = [r for r in summary if r["event"] == "notify.sent"]
    assert len(sent) >= 6
    assert not [r for r in summary if r["event"] in ("notify.failed", "notify.pending")]
    from release_mgmt.reports import evidence

    report = evidence.fetch(airflow.client("admin"), dag, run)  # what an auditor gets
    told = {(n["status"], n["notification"], n["recipient"]) for n in report["notifications"]}
    assert ("sent", "approval.requested", "bob") in told
    assert ("sent", "change.awaiting_authorization", "bob") in told


def test_a_rejected_run_tells_whoever_triggered_it(airflow, mailroom, sample_notify) -> None:
    dag = sample_notify
    run = airflow.trigger(dag, "alice", {"version_web": "1.3.1"})
    _wait_open(airflow, dag, run, "the request")
    assert airflow.answer(dag, run, GATE, user="bob", option="Reject", comment="error budget exhausted")[0] == 200
    assert airflow.wait_finished(dag, run) == "failed"
    mailroom.settle(run, want_posts=3, want_mails=2)
    mails = mailroom.mails(run)
    assert [(to, subject) for to, subject, _ in mails] == [
        ("alice@example.com", "[release_mgmt] Rejected: sample_notify web 1.3.1 into prod"),
        ("bob@example.com", "[release_mgmt] Approval needed: sample_notify web 1.3.1 into prod"),
    ]
    assert "Who: bob" in mails[0][2]
    assert "error budget exhausted" in mails[0][2]
    assert _events(mailroom.posts(run)) == [
        ("environment.succeeded", "dev"),
        ("environment.succeeded", "staging"),
        ("run.failed", ""),
    ]


def test_a_rolled_back_run_tells_the_team_what_failed_and_what_was_restored(airflow, mailroom, sample_notify) -> None:
    dag = sample_notify
    run = airflow.trigger(dag, "alice", {"version_web": "2.0.0"})  # known bad: fails its health check in dev
    assert airflow.wait_finished(dag, run) == "failed"
    mailroom.settle(run, want_posts=3, want_mails=0)
    assert mailroom.mails(run) == []
    posts = mailroom.posts(run)
    assert _events(posts) == [("rollback.done", "dev"), ("run.failed", ""), ("validation.failed", "dev")]
    rollback = next(p for p in posts if p["event"] == "rollback.done")
    assert rollback["subject"] == "[release_mgmt] Rolled back: web in dev (sample_notify), 2.0.0 removed"
    evidence = f"{airflow.url}/release-console/runs/{dag}/{quote(run, safe='')}/evidence"
    assert rollback["links"]["Evidence"] == evidence


def test_channels_down_for_the_whole_run_change_nothing_but_audit_lines(
    airflow, mailroom, tmp_path: Path, browser
) -> None:
    """The same release with and without notifications to a dead mail server and a 500 webhook: the same task
    states, and every failure is a notify.failed audit line naming why, which an auditor reads on the run's
    evidence page in a real browser."""
    dags = {}
    for name, rules in (("quiet", []), ("loud", [{"events": ["*"], "channels": ["down-mail", "broken-chat"]}])):
        data = minimal_definition(f"notify_{name}")
        for rule in rules:
            rule["to"] = ["alice"]
        data["notify"] = rules
        write_definition(airflow.releases, f"notify_{name}.yaml", data)
        dags[name] = f"release_notify_{name}"
    for dag in dags.values():
        airflow.wait_for(lambda dag=dag: airflow.dag_ready(dag), 120, dag)
    runs = {name: airflow.trigger(dag, "alice") for name, dag in dags.items()}
    assert {name: airflow.wait_finished(dags[name], run) for name, run in runs.items()} == {
        "quiet": "success",
        "loud": "success",
    }
    assert airflow.states(dags["quiet"], runs["quiet"]) == airflow.states(dags["loud"], runs["loud"])
    log = airflow.log(dags["loud"], runs["loud"], "summary")
    records = records_from_log(log)[0]
    failed = [r for r in records if r["event"] == "notify.failed"]
    assert failed, "the summary names the notifications that failed"
    errors = {r["details"]["channel"]: r["details"]["error"] for r in failed}
    assert "Connection refused" in errors["down-mail"] or "ConnectionRefused" in errors["down-mail"]
    assert errors["broken-chat"] == "the webhook answered 500 Internal Server Error"
    assert all(r["details"]["attempts"] == 3 for r in failed)
    assert not [r for r in records if r["event"] == "notify.pending"]
    assert len(mailroom.hooks.seen) >= 3
    assert "smtp-s3cret-pw" not in log
    auditor = Person(browser, airflow, "victor", tmp_path)  # a viewer
    try:
        auditor.open(f"/release-console/runs/{dags['loud']}/{quote(runs['loud'], safe='')}/evidence")
        rows = auditor.page.locator("tr.notification")
        assert rows.count() == len(failed)
        assert "the webhook answered 500 Internal Server Error" in rows.all_inner_texts()[-1] or any(
            "the webhook answered 500" in text for text in rows.all_inner_texts()
        )
        auditor.shot("evidence-with-failed-notifications")
    finally:
        auditor.context.close()


def test_a_rollback_retried_three_times_tells_its_failure_once(airflow, mailroom, tmp_path: Path) -> None:
    """The rollback fails on its first two tries (Airflow retries recovery tasks) and succeeds on the third: the
    team hears once that it failed and once that it is done."""
    counter = tmp_path / "tries"
    flaky = tmp_path / "flaky_rollback.py"
    flaky.write_text(
        "import pathlib, sys\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "sys.exit(0 if n >= 3 else 1)\n"
    )
    data = minimal_definition("notify_retry", environments=[{"name": "dev"}])
    data["components"][0]["validate"] = [command("false")]
    data["components"][0]["undeploy"] = command(f"python3 {flaky}")  # nothing earlier to restore: undeploy
    data["notify"] = [{"events": ["rollback.*", "validation.failed"], "channels": ["ops-chat"]}]
    write_definition(airflow.releases, "notify_retry.yaml", data)
    dag = "release_notify_retry"
    airflow.wait_for(lambda: airflow.dag_ready(dag), 120, dag)
    run = airflow.trigger(dag, "alice")
    assert airflow.wait_finished(dag, run, seconds=300) == "failed"
    assert counter.read_text() == "3"
    mailroom.settle(run, want_posts=3, want_mails=0)
    assert _events(mailroom.posts(run)) == [
        ("rollback.done", "dev"),
        ("rollback.failed", "dev"),
        ("validation.failed", "dev"),
    ]
