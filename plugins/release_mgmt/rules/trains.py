"""What a train does when a member fails in an environment, pure: whether a member's stage still starts, and
whether a member already deployed there is reverted. Keys are the environment's local task ids
(``deploy_<member>``), values Airflow's task states."""

from __future__ import annotations

from collections.abc import Mapping

POLICIES = ("rollback_train", "stop", "continue")


def failed_members(states: Mapping[str, str | None]) -> list[str]:
    """The members whose stage failed in the environment, sorted."""
    return sorted(t.removeprefix("deploy_") for t, s in states.items() if t.startswith("deploy_") and s == "failed")


def stage_starts(policy: str, states: Mapping[str, str | None], member: str) -> bool:
    """Whether ``member``'s stage starts: always under ``continue`` (its own dependencies already held it back
    if one of them failed); under ``stop`` and ``rollback_train`` only while no other member failed there."""
    if policy == "continue":
        return True
    return not [m for m in failed_members(states) if m != member]


def reverts(policy: str, states: Mapping[str, str | None], member: str) -> bool:
    """Whether ``member`` is deployed again at its last known good version: only under ``rollback_train``, when
    another member failed in the environment and this member's stage succeeded there (a failed member rolled
    itself back; one that never started changed nothing)."""
    return policy == "rollback_train" and bool(failed_members(states)) and states.get(f"deploy_{member}") == "success"
