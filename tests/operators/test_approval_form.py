"""The approval request's form: Approve needs no comment (the field is optional), so an approver is never made to
type one; a reject without a comment is refused by the gate itself (tests/gates, tests/operators/test_approval)."""

from __future__ import annotations

from airflow.sdk.definitions.param import ParamsDict

from release_mgmt.operators.approval import ApprovalGateOperator


def test_the_comment_is_optional_in_the_form() -> None:
    """The form validates with the comment left empty (null) or given."""
    gate = ApprovalGateOperator(
        task_id="gate_approval",
        release="shop",
        environment="prod",
        gate={"type": "approval", "users": ["alice", "bob"]},
        approver_groups={},
        components=["api"],
        environments=["prod"],
    )
    form = ParamsDict(gate.params)
    assert form.validate() == {"comment": None}
    form["comment"] = "looks good"
    assert form.validate() == {"comment": "looks good"}
    assert "null" in gate.serialized_params["comment"]["schema"]["type"]
