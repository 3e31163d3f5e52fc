"""Notification routing is checked when a definition loads, not at 3 a.m.: unknown channels, events, users and
groups, e-mail rules with nobody (or nobody with an address) to write to, and a malformed or missing directory
are errors naming the file, the line and the key path."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from release_mgmt.definition.loader import load_file, load_paths
from release_mgmt.definition.notify_rules import EVENTS, notification_event
from release_mgmt.errors import DefinitionError
from tests.helpers import minimal_definition, write_definition

DIRECTORY = """\
channels:
  release-mail: {connection: smtp_release, kind: email}
  ops-chat: {connection: ops_webhook, kind: webhook, format: slack}
users:
  alice: {name: Alice Example, email: alice@example.com, chat: "@alice"}
  bob: {email: bob@example.com}
  carol: {chat: "@carol"}
  dave: {email: dave@example.com}
"""


def gated(**overrides: Any) -> dict[str, Any]:
    """A definition whose prod has a gate (alice, bob, carol) and a change authorized by the cab group."""
    data = minimal_definition(approver_groups={"managers": ["alice", "bob"], "cab": ["bob", "dave"]}, **overrides)
    prod = data["environments"][1]
    prod["gates"] = [{"type": "approval", "users": ["carol"], "groups": ["managers"], "min_approvals": 1}]
    prod["change"] = {"authorizers": {"groups": ["cab"]}}
    return data


def load(tmp_path: Path, data: dict[str, Any], directory: str | None = DIRECTORY) -> Any:
    if directory is not None:
        (tmp_path / "directory.yaml").write_text(directory)
    return load_file(write_definition(tmp_path / "releases", "shop.yaml", data), display="shop.yaml")


def problems(tmp_path: Path, data: dict[str, Any], directory: str | None = DIRECTORY) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        load(tmp_path, data, directory)
    return info.value.lines()


def test_rules_load_with_the_directory_and_shared_rules(tmp_path: Path) -> None:
    """Release rules, environment rules and a shared rules file (appended release-wide) all load; the directory
    travels with the definition."""
    (tmp_path / "notify").mkdir()
    (tmp_path / "notify" / "oncall.yaml").write_text("rules:\n  - {events: [run.failed], channels: [ops-chat]}\n")
    data = gated(
        notify=[{"events": ["approval.*"], "channels": ["ops-chat"], "to": ["approvers"]}],
        notify_routes=["oncall"],
    )
    data["environments"][1]["notify"] = [
        {"events": ["change.awaiting_authorization"], "channels": ["release-mail", "ops-chat"], "to": ["authorizers"]}
    ]
    defn = load(tmp_path, data).definition
    assert [r.events for r in defn.notify] == [("approval.*",), ("run.failed",)]
    assert defn.directory is not None
    assert defn.directory.users["alice"].email == "alice@example.com"
    assert defn.directory.channels["ops-chat"].format == "slack"


def test_a_definition_without_rules_needs_no_directory(tmp_path: Path) -> None:
    assert load(tmp_path, minimal_definition(), directory=None).definition.directory is None


@pytest.mark.parametrize(
    ("rule", "where", "message"),
    [
        (
            {"events": ["run.failed"], "channels": ["pager"]},
            "environments[1].notify[0].channels[0]",
            "unknown channel 'pager'; the directory (directory.yaml) has: release-mail, ops-chat",
        ),
        (
            {"events": ["run.exploded"], "channels": ["ops-chat"]},
            "environments[1].notify[0].events[0]",
            "unknown event 'run.exploded'; events: approval.requested",
        ),
        (
            {"events": ["run.failed"], "channels": ["ops-chat"], "to": ["mallory"]},
            "environments[1].notify[0].to[0]",
            "unknown user 'mallory': add it to directory.yaml (users:), or write an e-mail address",
        ),
        (
            {"events": ["run.failed"], "channels": ["ops-chat"], "to": ["group:sre"]},
            "environments[1].notify[0].to[0]",
            "unknown approver group 'sre'; this release has: cab, managers",
        ),
        (
            {"events": ["run.failed"], "channels": ["release-mail"]},
            "environments[1].notify[0].to",
            "an email channel needs recipients",
        ),
        (
            {"events": ["approval.requested"], "channels": ["release-mail"], "to": ["approvers"]},
            "environments[1].notify[0].to[0]",
            "carol has no email in directory.yaml; add email: under users:",
        ),
        (
            {"events": ["run.failed"], "channels": ["ops-chat"], "to": ["not an address!"]},
            "environments[1].notify[0].to[0]",
            "'not an address!' is not a recipient",
        ),
        (
            {"events": ["run.failed"], "channels": ["ops-chat"], "bcc": ["x"]},
            "environments[1].notify[0].bcc",
            "",
        ),
    ],
)
def test_bad_rules_name_file_line_and_key_path(tmp_path: Path, rule: dict[str, Any], where: str, message: str) -> None:
    data = gated()
    data["environments"][1]["notify"] = [rule]
    lines = problems(tmp_path, data)
    assert any(re.match(rf"shop\.yaml:\d+: {re.escape(where)}: ", line) and message in line for line in lines), lines


def test_roles_a_scope_does_not_have_are_errors(tmp_path: Path) -> None:
    """dev has no gate and no change: approvers and authorizers there mean nobody."""
    data = gated()
    data["environments"][0]["notify"] = [
        {"events": ["*"], "channels": ["ops-chat"], "to": ["approvers", "authorizers"]}
    ]
    lines = problems(tmp_path, data)
    assert any("environments[0].notify[0].to[0]: dev has no approval gate, so no approvers" in x for x in lines)
    assert any("environments[0].notify[0].to[1]: dev opens no change, so it has no authorizers" in x for x in lines)


@pytest.mark.parametrize(
    ("directory", "expected"),
    [
        (
            "channels:\n  mail: {connection: smtp, kind: pigeon}\n",
            "directory.yaml:2: channels.mail.kind: input should be",
        ),
        (
            "users:\n  alice: {email: not-an-address}\n",
            "directory.yaml:2: users.alice.email: 'not-an-address' is not an e-mail address such as alice@example.com",
        ),
        ("channels: [mail]\n", "directory.yaml:1: channels: input should be a valid dictionary"),
        (
            "channels:\n  mail: {connection: 'bad id!', kind: email}\n",
            "channels.mail.connection: 'bad id!' is not an Airflow connection id: letters, digits",
        ),
        ("users: {alice: {email: a@b.co}\n", "directory.yaml:"),
        ("teams: []\n", "directory.yaml:1: teams: extra inputs are not permitted"),
        # found by the notification fuzzer (tools/fuzz_definitions.py --target notify): a merge key as a user name
        ("users:\n  '<<':\n", "directory.yaml:2: users.<<.[key]: '<<' is not an Airflow user name"),
    ],
)
def test_a_malformed_directory_is_named_at_validation(tmp_path: Path, directory: str, expected: str) -> None:
    data = gated(notify=[{"events": ["run.failed"], "channels": ["mail"], "to": ["alice@example.com"]}])
    lines = problems(tmp_path, data, directory)
    assert any(expected in line for line in lines), lines
    assert not any("^[" in line or "pattern" in line for line in lines), lines  # words, never a regex


def test_rules_without_a_directory_say_where_it_belongs(tmp_path: Path) -> None:
    data = gated(notify=[{"events": ["run.failed"], "channels": ["ops-chat"]}])
    lines = problems(tmp_path, data, directory=None)
    assert lines[0].startswith("shop.yaml:")
    assert "notify[0]: notification rules need the directory" in lines[0]
    assert "directory.yaml" in lines[0]


def test_shared_rules_errors_name_their_own_file(tmp_path: Path) -> None:
    (tmp_path / "notify").mkdir()
    (tmp_path / "notify" / "oncall.yaml").write_text("rules:\n  - {events: [run.failed], channels: [pager]}\n")
    lines = problems(tmp_path, gated(notify_routes=["oncall"]))
    assert lines[0].endswith(
        "notify/oncall.yaml:2: rules[0].channels[0]: unknown channel 'pager'; the directory "
        "(directory.yaml) has: release-mail, ops-chat"
    ), lines
    lines = problems(tmp_path, gated(notify_routes=["nope"]))
    assert "notify_routes[0]: no shared rules" in lines[0]
    assert "known: oncall" in lines[0]


def test_a_broken_directory_never_hides_releases_that_do_not_notify(tmp_path: Path) -> None:
    (tmp_path / "directory.yaml").write_text("channels: [broken\n")
    folder = tmp_path / "releases"
    write_definition(folder, "quiet.yaml", minimal_definition("quiet"))
    write_definition(folder, "loud.yaml", gated(name="loud", notify=[{"events": ["*"], "channels": ["x"]}]))
    report = load_paths([folder])
    assert [x.definition.name for x in report.loaded] == ["quiet"]
    assert [e.name for e in report.errors] == ["loud"]
    assert "directory.yaml" in report.errors[0].render()


def test_every_notification_event_is_one_audit_event() -> None:
    """The catalog maps each name to the audit event (and outcome) it is, and nothing else maps to it."""
    assert notification_event({"event": "validate.finished", "outcome": "failed"}) == "validation.failed"
    assert notification_event({"event": "validate.finished", "outcome": "success"}) is None
    assert notification_event({"event": "run.finished", "outcome": "failed"}) == "run.failed"
    assert notification_event({"event": "gate.requested", "outcome": "waiting"}) == "approval.requested"
    assert len({(k.audit, k.outcome) for k in EVENTS.values()}) == len(EVENTS)


def test_an_edited_directory_is_read_again(tmp_path: Path) -> None:
    """The directory is read once per version of the file, not once per definition: an edit is seen at once."""
    data = gated(notify=[{"events": ["run.failed"], "channels": ["ops-chat"]}])
    assert load(tmp_path, data).definition.directory is not None
    lines = problems(tmp_path, data, DIRECTORY.replace("ops-chat", "team-chat"))
    assert any("unknown channel 'ops-chat'" in line for line in lines), lines
