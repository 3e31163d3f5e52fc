"""Approval votes judged: what each answer to an approval gate means, one return per rule.

Pure: the gate (gates/approval.py), the vote and the votes counted so far in; a :class:`Verdict` out. The
operator (operators/approval.py) only stores votes and writes audit lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from release_mgmt.gates.approval import APPROVE, REJECT, ApprovalGate


@dataclass(frozen=True)
class Vote:
    """One answer to the request."""

    user: str
    decision: str
    comment: str
    at: str


@dataclass(frozen=True)
class Verdict:
    """What a vote means: ``refused`` (gate keeps waiting), ``counted`` (keeps waiting), ``approved``, ``rejected``."""

    kind: Literal["refused", "counted", "approved", "rejected"]
    reason: str


def missing(gate: ApprovalGate, approvals: Sequence[str], groups: Mapping[str, Sequence[str]]) -> list[str]:
    """What the quorum still lacks, in words (empty when reached)."""
    lacks = []
    if len(set(approvals)) < gate.min_approvals:
        lacks.append(f"{gate.min_approvals - len(set(approvals))} more approval(s)")
    for quorum in gate.group_quorums:
        have = len(set(approvals) & set(groups.get(quorum.group, ())))
        if have < quorum.min_approvals:
            lacks.append(f"{quorum.min_approvals - have} more from {quorum.group}")
    return lacks


def judge(  # noqa: PLR0911 - one return per rule, in the order they apply
    gate: ApprovalGate,
    vote: Vote,
    *,
    groups: Mapping[str, Sequence[str]],
    triggerer: str,
    approvals: Sequence[str],
    earlier_approvers: Sequence[str] = (),
) -> Verdict:
    """The meaning of ``vote`` given the approvals counted so far."""
    if vote.user not in gate.eligible(groups):
        return Verdict("refused", f"{vote.user} is not an eligible approver of this gate")
    if gate.separation_of_duties and vote.user == triggerer:
        return Verdict("refused", f"separation of duties: {vote.user} triggered this run and cannot approve it")
    if vote.user in approvals:
        return Verdict("refused", f"{vote.user} already approved; one person counts once")
    if gate.distinct_across_environments and vote.user in earlier_approvers:
        return Verdict("refused", f"{vote.user} approved an earlier environment of this run")
    if vote.decision == REJECT:
        if not vote.comment.strip():
            return Verdict("refused", "a reject needs a comment saying why")
        return Verdict("rejected", f"rejected by {vote.user}: {vote.comment.strip()}")
    if vote.decision != APPROVE:
        return Verdict("refused", f"unknown decision {vote.decision!r}")
    lacks = missing(gate, [*approvals, vote.user], groups)
    if lacks:
        return Verdict("counted", f"approval by {vote.user} counted; still needed: {', '.join(lacks)}")
    return Verdict("approved", f"quorum reached: {', '.join([*approvals, vote.user])}")
