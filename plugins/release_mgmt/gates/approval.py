"""The ``approval`` gate: who may approve an environment, how many must, and what can never be reached.

The model and its load-time checks; the votes are judged in rules/approval.py, and the operator
(operators/approval.py) waits for them through Airflow's human-in-the-loop requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from release_mgmt.definition.durations import Duration
from release_mgmt.gates.base import GateModel, GroupName

USER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$"
User = Annotated[str, StringConstraints(pattern=USER_PATTERN)]
APPROVE, REJECT = "Approve", "Reject"


class GroupQuorum(BaseModel):
    """A group that must bring its own number of approvals."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    group: GroupName
    min_approvals: int = Field(default=1, ge=1)


class ApprovalGate(GateModel):
    """Named people must approve before the environment's deployment starts."""

    OPERATOR: ClassVar[str] = "release_mgmt.operators.approval.ApprovalGateOperator"

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
    separation_of_duties: StrictBool = Field(
        default=True, description="The user who triggered the run can never approve it."
    )
    distinct_across_environments: StrictBool = Field(
        default=False, description="An approver of an earlier environment of the same run may not approve this one."
    )
    subject: str | None = Field(default=None, description="Title of the request (templated).")
    instructions: str = Field(default="", description="Extra text for the approvers (templated).")

    def problems(self, approver_groups: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
        """Approver groups that exist, then quorums that some set of eligible approvers can reach."""
        known = ", ".join(sorted(approver_groups)) or "none (define approver_groups)"
        unknown = [
            (
                f"groups[{k}]",
                f"unknown approver group {group!r}; known groups: {known}",
            )
            for k, group in enumerate(self.groups)
            if group not in approver_groups
        ]
        return unknown or reachable_problems(self, approver_groups)

    def eligible(self, approver_groups: Mapping[str, Sequence[str]]) -> list[str]:
        """Every user who may approve: ``users`` plus the members of ``groups``, sorted."""
        names = set(self.users)
        for group in self.groups:
            names.update(approver_groups.get(group, ()))
        return sorted(names)


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
