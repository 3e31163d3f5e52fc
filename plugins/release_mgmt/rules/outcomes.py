"""What happened in an environment, read from its task states: pure, so it is tested without Airflow."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

FAILED = frozenset({"failed", "upstream_failed"})
TOUCHED = frozenset({"success", "failed"})


@dataclass(frozen=True)
class EnvironmentOutcome:
    """``status`` is one of: succeeded, failed, rolled_back, rollback_failed, not_selected, not_started."""

    status: str
    failed_tasks: tuple[str, ...] = ()
    rolled_back: tuple[str, ...] = ()
    rollback_failed: tuple[str, ...] = ()

    @property
    def is_failure(self) -> bool:
        return self.status in ("failed", "rolled_back", "rollback_failed", "not_started")

    def sentence(self, environment: str, why: Mapping[str, str] | None = None) -> str:
        """One line for logs and the summary; ``why`` adds the reason a failed task gave (a gate's rejection:
        who and why), keyed by its local id."""
        text = {
            "succeeded": f"{environment}: succeeded",
            "not_selected": f"{environment}: not selected for this run",
            "not_started": f"{environment}: not started (an earlier environment did not succeed)",
        }.get(self.status)
        if text:
            return text
        parts = [f"{environment}: FAILED ({', '.join(self.failed_tasks) or 'entry'} failed)"]
        parts += [f"{task}: {(why or {})[task]}" for task in self.failed_tasks if (why or {}).get(task)]
        if self.rolled_back:
            parts.append(f"rolled back: {', '.join(self.rolled_back)}")
        if self.rollback_failed:
            parts.append(f"ROLLBACK FAILED: {', '.join(self.rollback_failed)}; restore by hand")
        return "; ".join(parts)


def work_failed(states: Mapping[str, str | None]) -> tuple[str, ...]:
    """The deploy/validate task ids (local ids) that failed, in name order."""
    return tuple(sorted(t for t, s in states.items() if t.startswith(("deploy_", "validate_")) and s == "failed"))


def needs_rollback(states: Mapping[str, str | None], component: str) -> bool:
    """True when some deploy or validation in the environment failed and ``component`` was touched."""
    env_failed = any(s in FAILED for t, s in states.items() if t.startswith(("deploy_", "validate_")))
    return env_failed and states.get(f"deploy_{component}") in TOUCHED


def environment_outcome(states: Mapping[str, str | None], selected: bool = True) -> EnvironmentOutcome:
    """The outcome of one environment from the states of its tasks (keys are local task ids).

    ``selected`` tells whether the run chose the environment: an unselected one is
    ``not_selected``, a selected one whose entry never ran is ``not_started``.
    """
    if not selected:
        return EnvironmentOutcome("not_selected")
    enter = states.get("enter")
    if enter in ("skipped", "upstream_failed", None):
        return EnvironmentOutcome("not_started")
    gates = tuple(
        sorted(t for t, s in states.items() if (t.startswith(("gate_", "change_")) or t == "lock") and s == "failed")
    )
    failed = (*gates, *work_failed(states))
    work_bad = any(s in FAILED for t, s in states.items() if t.startswith(("deploy_", "validate_")))
    if enter == "failed":
        failed = ("enter", *failed)
    if not failed and not work_bad:
        return EnvironmentOutcome("succeeded")
    rolled = tuple(
        sorted(t.removeprefix("rollback_") for t, s in states.items() if t.startswith("rollback_") and s == "success")
    )
    broken = tuple(
        sorted(t.removeprefix("rollback_") for t, s in states.items() if t.startswith("rollback_") and s in FAILED)
    )
    if broken:
        return EnvironmentOutcome("rollback_failed", failed, rolled, broken)
    return EnvironmentOutcome("rolled_back" if rolled else "failed", failed, rolled)
