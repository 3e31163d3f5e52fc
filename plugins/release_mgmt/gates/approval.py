"""The ``approval`` gate: who may approve an environment, how many must, and the rules of the count.

Pure: the model and the judgement of each vote. The operator (approval_operator.py) waits for
votes through Airflow's human-in-the-loop requests and asks :func:`judge` what each one means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from release_mgmt.definition.durations import Duration

USER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$"
User = Annotated[str, StringConstraints(pattern=USER_PATTERN)]
GroupName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,49}$")]
APPROVE, REJECT = "Approve", "Reject"


class GroupQuorum(BaseModel):
    """A group that must bring its own number of approvals."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group: GroupName
    min_approvals: int = Field(default=1, ge=1)


class ApprovalGate(BaseModel):
    """Named people must approve before the environment's deployment starts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["approval"]
    name: GroupName = Field(default="approval", description="Task id suffix: gate_<name>.")
    users: tuple[User, ...] = Field(default=(), description="Airflow user names that may approve.")
    groups: tuple[GroupName, ...] = Field(default=(), description="Approver groups (approver_groups) that may approve.")
    min_approvals: int = Field(default=1, ge=1, description="Distinct eligible approvers needed.")
    group_quorums: tuple[GroupQuorum, ...] = Field(
        default=(), description="Per-group minimums, on top of min_approvals."
    )
    timeout: Duration = Field(default=timedelta(days=1), description="How long to wait, e.g. 4h or 2d.")
    on_timeout: Literal["reject", "approve"] = Field(default="reject", description="Outcome when time runs out.")
    separation_of_duties: bool = Field(default=True, description="The user who triggered the run can never approve it.")
    distinct_across_environments: bool = Field(
        default=False, description="An approver of an earlier environment of the same run may not approve this one."
    )
    subject: str | None = Field(default=None, description="Title of the request (templated).")
    instructions: str = Field(default="", description="Extra text for the approvers (templated).")

    def eligible(self, approver_groups: Mapping[str, Sequence[str]]) -> list[str]:
        """Every user who may approve: ``users`` plus the members of ``groups``, sorted."""
        names = set(self.users)
        for group in self.groups:
            names.update(approver_groups.get(group, ()))
        return sorted(names)


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


def reachable_problems(gate: ApprovalGate, groups: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """(key, message) for quorums no set of eligible approvers can reach (checked at load time)."""
    problems: list[tuple[str, str]] = []
    eligible = gate.eligible(groups)
    spare = 1 if gate.separation_of_duties else 0
    why = " (separation_of_duties: whoever triggers the run cannot approve)" if spare else ""
    if not eligible:
        return [("users", "no approvers: name users or groups (approver_groups) who may approve")]
    if gate.min_approvals > len(eligible) - spare:
        problems.append(
            (
                "min_approvals",
                f"{gate.min_approvals} cannot be reached: {len(eligible)} eligible "
                f"approver(s), at most {len(eligible) - spare} can approve{why}",
            )
        )
    for i, quorum in enumerate(gate.group_quorums):
        members = groups.get(quorum.group, ())
        if quorum.group not in gate.groups:
            problems.append((f"group_quorums[{i}].group", f"group {quorum.group!r} is not among this gate's groups"))
        elif quorum.min_approvals > len(members) - spare:
            problems.append(
                (
                    f"group_quorums[{i}].min_approvals",
                    f"{quorum.min_approvals} cannot be reached: group {quorum.group} has {len(members)} "
                    f"member(s), at most {len(members) - spare} can approve{why}",
                )
            )
    return problems
