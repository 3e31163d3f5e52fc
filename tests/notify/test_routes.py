"""Which messages an event makes, for whom, saying what: recipients resolved from the rule (the gate's eligible
approvers but not whoever triggered the run, the voter, groups, directory users), one e-mail per address and one
post per webhook, links into Airflow, no secret, nothing a recipient could inject, and keys that make a retried
task's hand-over a duplicate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from release_mgmt.definition.loader import load_file
from release_mgmt.definition.models import ReleaseDefinition
from release_mgmt.notify import routes
from release_mgmt.notify.messages import Occasion
from tests.definition.test_notify_rules import DIRECTORY, gated
from tests.helpers import write_definition

BASE = "http://127.0.0.1:8080"


@pytest.fixture
def defn(tmp_path: Path) -> ReleaseDefinition:
    data = gated(
        notify=[
            {"events": ["run.failed", "rollback.*"], "channels": ["ops-chat"], "to": ["group:managers", "carol"]},
            {"events": ["approval.vote_refused"], "channels": ["release-mail"], "to": ["voter"]},
        ]
    )
    data["environments"][1]["notify"] = [
        {"events": ["approval.requested"], "channels": ["release-mail", "ops-chat"], "to": ["approvers"]},
        {"events": ["change.awaiting_authorization"], "channels": ["release-mail"], "to": ["authorizers"]},
    ]
    (tmp_path / "directory.yaml").write_text(
        DIRECTORY.replace('carol: {chat: "@carol"}', "carol: {chat: '@carol', email: carol@example.com}")
    )
    return load_file(write_definition(tmp_path / "releases", "shop.yaml", data)).definition


def occasion(task_id: str = "prod.gate_approval", triggered_by: str = "alice") -> Occasion:
    return Occasion("release_shop", "manual__2026-11-28T10:00:00+00:00", task_id, triggered_by, {"api": "1.2.0"}, BASE)


def record(event: str, outcome: str = "waiting", environment: str = "prod", **fields: Any) -> dict[str, Any]:
    return {
        "event": event,
        "release": "shop",
        "run_id": "manual__2026-11-28T10:00:00+00:00",
        "environment": environment,
        "component": fields.pop("component", ""),
        "version": fields.pop("version", ""),
        "actor": fields.pop("actor", "alice"),
        "change": fields.pop("change", ""),
        "outcome": outcome,
        "time": "2026-11-28T10:00:00Z",
        "details": fields,
    }


def test_approval_requested_reaches_the_eligible_approvers_but_not_the_triggerer(defn) -> None:
    """alice triggered the run: she cannot approve it, so only bob and carol are asked, by mail and in chat."""
    rec = record("gate.requested", gate="approval", eligible=["alice", "bob", "carol"], min_approvals=2)
    rec["details"] |= {"group_quorums": [{"group": "managers", "min_approvals": 1}], "timeout": "1d"}
    messages = routes.messages_for(defn, rec, occasion())
    mails = [m for m in messages if m["kind"] == "email"]
    assert sorted((m["recipient"], m["address"]) for m in mails) == [
        ("bob", "bob@example.com"),
        ("carol", "carol@example.com"),
    ]
    [chat] = [m for m in messages if m["kind"] == "webhook"]
    assert json.loads(chat["payload"])["mentions"] == "bob, @carol"
    mail = mails[0]
    assert mail["subject"] == "[release_mgmt] Approval needed: shop api 1.2.0 into prod"
    run = f"{BASE}/dags/release_shop/runs/manual__2026-11-28T10%3A00%3A00%2B00%3A00"
    link = f"{run}/tasks/prod.gate_approval/required_actions"
    assert f"Approve or reject: {link}" in mail["text"]
    assert f'href="{link}"' in mail["html"]
    assert "Triggered by: alice" in mail["text"]
    assert "Versions: api 1.2.0" in mail["text"]
    assert "Needs: 2 distinct approval(s), 1 from managers; waits 1d, then rejects" in mail["text"]


def test_a_refused_vote_is_told_to_the_voter_only(defn) -> None:
    rec = record("gate.vote_refused", "refused", actor="alice", gate="approval", reason="alice triggered this run")
    [mail] = routes.messages_for(defn, rec, occasion())
    assert (mail["recipient"], mail["address"]) == ("alice", "alice@example.com")
    assert "Nothing was counted: alice triggered this run" in mail["text"]


def test_change_waiting_goes_to_the_authorizers_with_a_console_link(defn) -> None:
    rec = record("change.waiting", change="CHG0000042", sys_id="abc123", state="assess")
    mails = routes.messages_for(defn, rec, occasion("prod.change_open", triggered_by="dave"))
    assert [m["address"] for m in mails] == ["bob@example.com"]  # dave triggered: he cannot authorize
    assert f"Change: {BASE}/release-console/changes/abc123" in mails[0]["text"]
    assert mails[0]["subject"] == "[release_mgmt] Change CHG0000042 awaits authorization: shop api 1.2.0 into prod"


def test_only_the_failing_outcome_notifies_and_rules_are_scoped(defn) -> None:
    assert routes.messages_for(defn, record("run.finished", "succeeded", environment=""), occasion()) == []
    assert routes.messages_for(defn, record("validate.finished", "failed"), occasion()) == []  # no rule for it
    [chat] = routes.messages_for(defn, record("run.finished", "failed", environment=""), occasion("summary"))
    assert json.loads(chat["payload"])["mentions"] == "@alice, bob, @carol"
    # dev has no rule for approval.requested: only prod's rules name it
    assert routes.messages_for(defn, record("gate.requested", environment="dev", eligible=["bob"]), occasion()) == []


def test_keys_are_stable_across_tries_and_distinct_per_recipient(defn) -> None:
    rec = record("gate.requested", gate="approval", eligible=["bob", "carol"])
    first = routes.messages_for(defn, rec, occasion())
    again = routes.messages_for(defn, {**rec, "time": "2026-11-28T10:05:00Z"}, occasion())
    assert [m["key"] for m in first] == [m["key"] for m in again]
    assert len({m["key"] for m in first}) == len(first) == 3


def test_no_secret_and_no_markup_injection(defn) -> None:
    """A rollback error that carries a password (masked by Airflow's masker) and markup in a version."""
    from airflow.sdk.log import mask_secret

    mask_secret("hunter2-db-password")
    rec = record(
        "rollback.finished",
        "failed",
        component="api",
        version="<script>alert(1)</script>",
        error="login hunter2-db-password refused",
    )
    [chat] = routes.messages_for(defn, rec, occasion("prod.rollback_api"))
    assert "hunter2-db-password" not in json.dumps(chat)
    mail_rule = {"events": ["rollback.failed"], "channels": ["release-mail"], "to": ["bob"]}
    scoped = defn.model_copy(update={"notify": (*defn.notify, type(defn.notify[0]).model_validate(mail_rule))})
    scoped._directory = defn.directory
    [mail] = [m for m in routes.messages_for(scoped, rec, occasion()) if m["kind"] == "email"]
    assert "<script>" not in mail["html"]
    assert "&lt;script&gt;" in mail["html"]
    assert "hunter2-db-password" not in mail["html"] + mail["text"] + mail["subject"]


def test_someone_without_an_address_is_reported_not_dropped(defn) -> None:
    """voter resolves at run time: a voter with no e-mail is named by unreachable() (an audit line)."""
    rec = record("gate.vote_refused", "refused", actor="zed", gate="approval", reason="not eligible")
    assert routes.messages_for(defn, rec, occasion()) == []
    assert routes.unreachable(defn, rec, occasion()) == ["zed"]


def test_a_wait_for_a_window_is_told_once_per_environment(defn) -> None:
    """Every component's deploy task waits for the same window: one message for the environment, with until."""
    rule = {"events": ["window.waiting"], "channels": ["ops-chat"], "to": ["triggered_by"]}
    scoped = defn.model_copy(update={"notify": (type(defn.notify[0]).model_validate(rule),)})
    scoped._directory = defn.directory
    until = "2026-12-27T00:00:00+00:00"
    api = record("window.waiting", component="api", until=until, reason="frozen: holidays", window="holidays")
    web = {**api, "component": "web"}
    [first] = routes.messages_for(scoped, api, occasion("prod.deploy_api"))
    [second] = routes.messages_for(scoped, web, occasion("prod.deploy_web"))
    assert first["key"] == second["key"]
    assert first["subject"] == f"[release_mgmt] Waiting for a window: shop into prod until {until}"
    assert "Why: frozen: holidays" in first["text"]


def test_rules_naming_one_channel_make_one_post_naming_everyone(defn) -> None:
    """run.failed matched by the release's rule (managers, carol) and, here, a second rule (bob again, alice):
    one post on the channel, each person mentioned once; one e-mail per address."""
    extra = {"events": ["run.*"], "channels": ["ops-chat", "release-mail"], "to": ["bob", "alice"]}
    scoped = defn.model_copy(update={"notify": (*defn.notify, type(defn.notify[0]).model_validate(extra))})
    scoped._directory = defn.directory
    messages = routes.messages_for(scoped, record("run.finished", "failed", environment=""), occasion("summary"))
    [chat] = [m for m in messages if m["kind"] == "webhook"]
    assert json.loads(chat["payload"])["mentions"] == "@alice, bob, @carol"
    assert sorted(m["address"] for m in messages if m["kind"] == "email") == ["alice@example.com", "bob@example.com"]
