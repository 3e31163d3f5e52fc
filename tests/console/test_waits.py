"""What a run waits for, in words: freezes with their end and what follows, gates and changes with who can act,
locks with their holder."""

from __future__ import annotations

from datetime import UTC, datetime

from release_mgmt.console.waits import waits
from release_mgmt.definition.models import ReleaseDefinition
from release_mgmt.rules.change import correlation_id
from tests.helpers import minimal_definition

NOW = datetime(2026, 6, 16, 10, 0, tzinfo=UTC)


def _defn(**prod) -> ReleaseDefinition:
    data = minimal_definition(
        "shop",
        approver_groups={"sre": ["alice", "bob", "carol"]},
        environments=[{"name": "dev"}, {"name": "prod", **prod}],
        windows=[
            {"name": "weekend", "kind": "maintenance", "reason": "low traffic", "timezone": "UTC",
             "cron": "0 22 * * 6", "duration": "4h", "environments": ["prod"]},
            {"name": "sale", "kind": "freeze", "reason": "summer sale", "timezone": "UTC",
             "start": "2026-06-15 00:00", "end": "2026-06-17 00:00", "environments": ["prod"]},
        ],
    )  # fmt: skip
    return ReleaseDefinition.model_validate(data)


def test_a_deferred_deploy_in_a_freeze_names_the_freeze_its_end_and_the_next_window() -> None:
    """prod.deploy_api deferred on the 16th: frozen until the 17th, then the Saturday maintenance window."""
    [wait] = waits(_defn(), {"prod.deploy_api": "deferred", "dev.deploy_api": "success"}, NOW)
    assert wait.kind == "freeze"
    assert "freeze sale (summer sale)" in wait.text
    assert "2026-06-17 00:00 UTC" in wait.text
    assert "then waiting for the next maintenance window: maintenance weekend" in wait.text
    assert wait.until == datetime(2026, 6, 20, 22, 0, tzinfo=UTC)


def test_a_parked_gate_names_who_may_approve_but_not_the_triggerer() -> None:
    """alice triggered the run: the gate waits for 2 of bob and carol, with a link to Required Actions."""
    defn = _defn(gates=[{"type": "approval", "groups": ["sre"], "min_approvals": 2}])
    [wait] = waits(defn, {"prod.gate_approval": "awaiting_input"}, NOW, triggered_by="alice", links={"approval": "/ra"})
    assert wait.kind == "approval"
    assert wait.who == ("bob", "carol")
    assert "2 of bob, carol" in wait.text
    assert wait.link == "/ra"


def test_a_change_wait_names_its_number_and_authorizers() -> None:
    """The run's prod change in Authorize: its number and the eligible authorizers (requester excluded)."""
    defn = _defn(change={"type": "normal", "authorizers": {"groups": ["sre"]}})
    change = {
        "sys_id": "abc",
        "number": "CHG0000042",
        "state": "-3",
        "correlation_id": correlation_id("shop", "prod", "run1"),
        "u_airflow_run_id": "run1",
        "u_authorizers": "alice,bob,carol",
        "u_requested_by": "alice",
        "u_min_authorizations": "1",
    }
    other = {**change, "number": "CHG0000041", "correlation_id": correlation_id("shop", "dev", "run1")}
    [wait] = waits(
        defn, {"prod.change_authorized": "deferred"}, NOW, changes=[other, change], links={"change": "c/{sys_id}"}
    )
    assert wait.kind == "change"
    assert "CHG0000042" in wait.text
    assert wait.who == ("bob", "carol")
    assert wait.link == "c/abc"


def test_a_lock_wait_names_the_holder() -> None:
    """A shared lock held by another release's run is named with that run."""
    defn = _defn(lock="prod-cluster")
    holder = {"dag_id": "release_billing", "run_id": "manual__9", "environment": "prod"}
    [wait] = waits(defn, {"prod.lock": "deferred"}, NOW, locks={"prod-cluster": {"holder": holder, "queue": []}})
    assert wait.kind == "lock"
    assert "held by release_billing run manual__9" in wait.text


def test_nothing_waiting_says_nothing() -> None:
    """Running and finished tasks are not waits."""
    assert waits(_defn(), {"dev.deploy_api": "running", "prod.enter": "success"}, NOW) == []
