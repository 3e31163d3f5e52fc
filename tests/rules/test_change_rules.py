"""The change's state model, defined once: stored values, the path to authorization per type, the close code."""

from __future__ import annotations

import pytest

from release_mgmt.rules.change import (
    ASSESS,
    AUTHORIZE,
    AUTHORIZED,
    FLOWS,
    IMPLEMENT,
    NEW,
    SCHEDULED,
    STOPPED,
    ChangeState,
    close_code,
    correlation_id,
    next_on_the_way,
)


def test_states_are_servicenows_stored_values() -> None:
    """-5 New ... 0 Review, 3 Closed, 4 Canceled; a record's state reads as the enum, labels are refused."""
    assert [int(s) for s in ChangeState] == [-5, -4, -3, -2, -1, 0, 3, 4]
    assert ChangeState.of({"state": "-3"}) is AUTHORIZE
    assert ChangeState.of(-1).label == "Implement"
    with pytest.raises(ValueError, match=r"invalid literal"):
        ChangeState.of({"state": "Authorize"})
    with pytest.raises(ValueError, match="is not a valid ChangeState"):
        ChangeState.of({"state": "7"})
    assert {SCHEDULED, IMPLEMENT} == AUTHORIZED
    assert {int(s) for s in STOPPED} == {3, 4}


@pytest.mark.parametrize(
    ("kind", "current", "steps"),
    [
        ("normal", NEW, [ASSESS, AUTHORIZE]),
        ("normal", ASSESS, [AUTHORIZE]),
        ("normal", AUTHORIZE, []),
        ("emergency", NEW, [AUTHORIZE]),
        ("standard", NEW, [SCHEDULED]),
        ("standard", SCHEDULED, []),
        ("normal", IMPLEMENT, []),
    ],
)
def test_path_to_authorization_follows_the_flow(kind: str, current: ChangeState, steps: list[ChangeState]) -> None:
    """The release walks a change to where it waits for (or skips) authorization, one allowed step at a time."""
    assert next_on_the_way(kind, current) == steps
    here = current
    for step in steps:
        assert step in FLOWS[kind][here]
        here = step


def test_no_flow_lets_anyone_write_a_change_out_of_authorize() -> None:
    """Only the approval records move a change out of Authorize."""
    assert all(FLOWS[kind].get(AUTHORIZE, set()) == set() for kind in FLOWS)


def test_close_code_and_correlation_id() -> None:
    """A pass after a retry closes with issues; the idempotency key is stable and at most 100 characters."""
    assert close_code("succeeded", retried=False) == "successful"
    assert close_code("succeeded", retried=True) == "successful_issues"
    assert close_code("rolled_back", retried=False) == "unsuccessful"
    long_run = "manual__" + "x" * 200
    key = correlation_id("shop", "prod", long_run)
    assert len(key) == 100
    assert key == correlation_id("shop", "prod", long_run)
    assert key != correlation_id("shop", "prod", long_run + "y")
    assert correlation_id("shop", "prod", "r1") == "release_mgmt:shop:prod:r1"
