"""The evidence report and the audit-line parser, on records as Airflow's logs hold them."""

from __future__ import annotations

import json

from release_mgmt.records.audit import audit_line, records_from_log
from release_mgmt.reports import evidence

RUN = {
    "dag_id": "release_shop",
    "run_id": "manual__1",
    "triggered_by": "alice",
    "start_date": "2026-11-27T10:00:00Z",
    "conf": {"version_api": "1.3.0"},
    "state": "failed",
}


def _line(event: str, **fields) -> str:
    base = {"release": "shop", "run_id": "manual__1", "outcome": fields.pop("outcome", "ok")}
    return audit_line(event, **base, **fields)


def test_parser_reads_console_json_and_rest_records() -> None:
    """The same audit record is found in a console line, a JSON log line and a REST log record."""
    line = _line("deploy.finished", environment="prod", component="api", version="1.3.0", outcome="success")
    console = f"2026-11-27T10:00:00Z [info] {line} [airflow.task] loc=audit.py:54"
    json_line = json.dumps({"timestamp": "2026-11-27T10:00:00Z", "event": line, "level": "info"})
    rest = [{"timestamp": "2026-11-27T10:00:00Z", "event": line}, {"event": "unrelated"}]
    found = [records_from_log(console)[0], records_from_log(json_line)[0], records_from_log(rest)[0]]
    assert all(f == found[0] for f in found)
    assert found[0][0]["event"] == "deploy.finished"


def test_malformed_lines_are_reported_not_dropped() -> None:
    """A line with the prefix but broken JSON is returned as malformed."""
    records, malformed = records_from_log('RELEASE_AUDIT {"event": "deploy.finished", \nRELEASE_AUDIT {"no_event": 1}')
    assert records == []
    assert len(malformed) == 2


def _report() -> dict:
    lines = [
        _line(
            "gate.vote_refused",
            environment="prod",
            actor="alice",
            outcome="refused",
            details={"reason": "separation of duties"},
        ),
        _line(
            "gate.decision",
            environment="prod",
            actor="bob",
            outcome="approved",
            details={
                "gate": "approval",
                "decision": "approved",
                "approvers": ["bob"],
                "votes": [],
                "rejected_by": "",
                "comment": "",
                "timeout": False,
            },
        ),
        _line("change.opened", environment="prod", change="CHG0000007", outcome="created"),
        _line(
            "deploy.started",
            environment="prod",
            component="api",
            version="1.3.0",
            outcome="started",
            details={"previous_version": "1.2.0"},
        ),
        _line(
            "validate.finished",
            environment="prod",
            component="api",
            version="1.3.0",
            outcome="failed",
            details={"error": "HTTP 503"},
        ),
        _line("rollback.finished", environment="prod", component="api", version="1.3.0", outcome="success"),
        _line("change.closed", environment="prod", change="CHG0000007", outcome="unsuccessful"),
        _line("environment.finished", environment="prod", outcome="rolled_back"),
    ]
    records, malformed = records_from_log("\n".join(lines))
    return evidence.build(
        RUN, [{"task_id": "prod.deploy_api", "state": "success", "try_number": 1}], records, malformed
    )


def test_report_says_who_what_and_what_ran_before() -> None:
    """Approvers, refused votes, the change and its close code, versions before and after, the outcome."""
    report = _report()
    prod = report["environments"]["prod"]
    assert prod["outcome"] == "rolled_back"
    assert prod["gates"][0]["approvers"] == ["bob"]
    assert prod["refused_votes"][0]["user"] == "alice"
    assert (prod["change"]["number"], prod["change"]["close_code"]) == ("CHG0000007", "unsuccessful")
    assert prod["components"]["api"]["previous_version"] == "1.2.0"
    markdown = evidence.to_markdown(report)
    assert prod["components"]["api"]["after"] == "1.2.0"  # rolled back
    expected = "- api: 1.2.0 -> 1.3.0, now 1.2.0 (deploy.started=started, validate.finished=failed, rollback.finished"
    assert expected + "=success)" in markdown
    assert "- gate approval: approved by bob" in markdown
    assert report["digest"] in markdown


def test_digest_detects_any_change() -> None:
    """The digest verifies, and changing any field (even deep inside) breaks it."""
    report = _report()
    assert evidence.verify(report)
    tampered = json.loads(json.dumps(report))
    tampered["environments"]["prod"]["gates"][0]["approvers"] = ["mallory"]
    assert not evidence.verify(tampered)
    assert evidence.digest(report) == evidence.digest(json.loads(json.dumps(report)))  # stable across copies


def test_report_says_who_was_told_what_and_how_it_went() -> None:
    """The summary's notify.* lines (and a hand-over a task could not make) become the report's notifications."""
    lines = [
        _line(
            "notify.failed",
            environment="prod",
            outcome="failed",
            details={"notifier": "rules", "event": "gate.requested", "error": "the change service answered 503"},
        ),
        _line(
            "notify.sent",
            environment="prod",
            outcome="sent",
            details={
                "notification": "approval.requested",
                "channel": "release-mail",
                "recipient": "bob",
                "subject": "[release_mgmt] Approval needed",
                "attempts": 1,
                "error": "",
                "key": "k1",
            },
        ),
        _line(
            "notify.failed",
            outcome="failed",
            details={
                "notification": "run.failed",
                "channel": "ops-chat",
                "recipient": "",
                "subject": "s",
                "attempts": 3,
                "error": "the webhook answered 500 Internal Server Error",
                "key": "k2",
            },
        ),
    ]
    records, _ = records_from_log("\n".join(lines))
    report = evidence.build(RUN, [], records)
    assert [(n["status"], n["notification"], n["channel"], n["recipient"]) for n in report["notifications"]] == [
        ("failed", "gate.requested", "rules", ""),
        ("sent", "approval.requested", "release-mail", "bob"),
        ("failed", "run.failed", "ops-chat", ""),
    ]
    markdown = evidence.to_markdown(report)
    assert "- sent: approval.requested to bob via release-mail" in markdown
    assert "- failed: run.failed via ops-chat: the webhook answered 500 Internal Server Error" in markdown
    assert evidence.verify(report)
