"""The approval gate's rules, without Airflow: who counts, what ends the wait."""

from __future__ import annotations

import pytest

from release_mgmt.definition.durations import format_duration, parse_duration
from release_mgmt.gates.approval import ApprovalGate, reachable_problems
from release_mgmt.rules.approval import Vote, judge

GROUPS = {"sre": ["alice", "bob", "carol"], "product": ["pam", "pete"]}


def _gate(**fields) -> ApprovalGate:
    return ApprovalGate.model_validate({"type": "approval", "groups": ["sre"], **fields})


def _judge(gate: ApprovalGate, user: str, decision: str = "Approve", comment: str = "", approvals=(), **kw):
    return judge(
        gate,
        Vote(user, decision, comment, "t"),
        groups=GROUPS,
        triggerer=kw.pop("triggerer", "alice"),
        approvals=list(approvals),
        **kw,
    )


def test_triggerer_cannot_approve_their_own_run() -> None:
    """Separation of duties refuses the triggerer's approval; the gate keeps waiting."""
    verdict = _judge(_gate(), "alice")
    assert (verdict.kind, verdict.reason) == (
        "refused",
        "separation of duties: alice triggered this run and cannot approve it",
    )


def test_separation_of_duties_can_be_turned_off() -> None:
    """With separation_of_duties false the triggerer's approval counts."""
    assert _judge(_gate(separation_of_duties=False), "alice").kind == "approved"


def test_one_person_counts_once_and_quorum_needs_distinct_people() -> None:
    """bob twice is one approval; bob then carol reaches min_approvals 2."""
    gate = _gate(min_approvals=2)
    assert _judge(gate, "bob").kind == "counted"
    assert _judge(gate, "bob", approvals=["bob"]).reason == "bob already approved; one person counts once"
    assert _judge(gate, "carol", approvals=["bob"]).kind == "approved"


def test_outsiders_are_refused() -> None:
    """Someone outside users and groups never counts."""
    assert _judge(_gate(), "mallory").reason == "mallory is not an eligible approver of this gate"


def test_reject_needs_a_comment_and_then_ends_the_gate() -> None:
    """An empty reject is refused; a reject with a reason ends the gate, whatever was counted."""
    assert _judge(_gate(), "bob", "Reject").reason == "a reject needs a comment saying why"
    verdict = _judge(_gate(min_approvals=2), "carol", "Reject", " too risky ", approvals=["bob"])
    assert (verdict.kind, verdict.reason) == ("rejected", "rejected by carol: too risky")


def test_group_quorums() -> None:
    """Each group brings its own number: two sre approvals are not enough without product."""
    gate = _gate(
        groups=["sre", "product"],
        min_approvals=2,
        group_quorums=[{"group": "sre", "min_approvals": 1}, {"group": "product", "min_approvals": 1}],
    )
    assert _judge(gate, "carol", approvals=["bob"]).reason == (
        "approval by carol counted; still needed: 1 more from product"
    )
    assert _judge(gate, "pam", approvals=["bob"]).kind == "approved"


def test_distinct_across_environments() -> None:
    """An approver of an earlier environment of the run is refused when the gate asks for it."""
    gate = _gate(distinct_across_environments=True)
    assert _judge(gate, "bob", earlier_approvers=["bob"]).reason == "bob approved an earlier environment of this run"
    assert _judge(_gate(), "bob", earlier_approvers=["bob"]).kind == "approved"


def test_unreachable_quorums_are_found_before_any_run() -> None:
    """min_approvals 3 of three people is impossible when one of them may be the triggerer."""
    assert reachable_problems(_gate(min_approvals=3), GROUPS) == [
        (
            "min_approvals",
            "3 cannot be reached: 3 eligible approver(s), at most 2 can approve "
            "(separation_of_duties: whoever triggers the run cannot approve)",
        )
    ]
    assert reachable_problems(_gate(min_approvals=3, separation_of_duties=False), GROUPS) == []
    assert reachable_problems(_gate(groups=[]), GROUPS)[0][0] == "users"


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("4h", 14400), ("2d", 172800), ("1.5h", 5400), (30, 30)]
)
def test_durations(text, seconds) -> None:
    """People write 90s, 15m, 4h, 2d; a bare number is seconds."""
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["-5m", "0s", "soon", "", True, "4 hours"])
def test_bad_durations(text) -> None:
    """Zero, negative or unreadable durations are refused."""
    with pytest.raises(ValueError, match="must be"):
        parse_duration(text)


def test_duration_round_trip() -> None:
    """The shortest exact spelling is written back."""
    assert [format_duration(parse_duration(t)) for t in ("120m", "48h", "90s", "3600s")] == ["2h", "2d", "90s", "1h"]
