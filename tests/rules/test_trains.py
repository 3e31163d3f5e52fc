"""A train's policy when a member fails in an environment, decided from task states alone."""

from __future__ import annotations

import pytest

from release_mgmt.rules.trains import failed_members, reverts, stage_starts

#: identity succeeded, payments failed, web not started yet, search still running
STATES = {"deploy_identity": "success", "deploy_payments": "failed", "deploy_web": None, "deploy_search": "running"}


@pytest.mark.parametrize(("policy", "starts"), [("continue", True), ("stop", False), ("rollback_train", False)])
def test_a_member_not_started_yet_starts_only_under_continue(policy: str, starts: bool) -> None:
    """web has not started when payments failed."""
    assert stage_starts(policy, STATES, "web") is starts


def test_nothing_failed_everything_starts() -> None:
    """Without a failure every policy lets every member start."""
    calm = {**STATES, "deploy_payments": "success"}
    assert all(stage_starts(p, calm, "web") for p in ("continue", "stop", "rollback_train"))


def test_only_rollback_train_reverts_and_only_members_that_succeeded() -> None:
    """identity (succeeded) is reverted; payments (failed: it rolled itself back), web (never started) and search
    (still running when asked) are not; stop and continue revert nothing."""
    assert [m for m in ("identity", "payments", "web", "search") if reverts("rollback_train", STATES, m)] == [
        "identity"
    ]
    assert not reverts("stop", STATES, "identity")
    assert not reverts("continue", STATES, "identity")
    assert not reverts("rollback_train", {**STATES, "deploy_payments": "success"}, "identity")
    assert failed_members(STATES) == ["payments"]
