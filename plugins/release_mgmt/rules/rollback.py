"""Whether a component is rolled back: only when its environment failed and this run changed it."""

from __future__ import annotations

from collections.abc import Mapping

from release_mgmt.rules.outcomes import FAILED, needs_rollback


def skip_reason(states: Mapping[str, str | None], component: str, *, dry_run: bool, started: bool) -> str | None:
    """Why ``component`` needs no rollback (None: it does). ``states``: the environment's deploy and validate
    tasks; ``started``: whether its deploy began changing the target."""
    if not dry_run and started and needs_rollback(states, component):
        return None
    if dry_run:
        return "dry run"
    if not any(s in FAILED for s in states.values()):
        return "the environment succeeded"
    return f"{component} was not changed by this run"
