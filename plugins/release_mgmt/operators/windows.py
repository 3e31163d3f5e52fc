"""Freeze and maintenance windows at run time: checked when an environment starts and again right before
every deploy (a retry checks again). Waiting defers to the triggerer (no worker held); rollbacks are never
blocked, only noted. The decision itself is rules/windows.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from release_mgmt.definition.calendars import Window
from release_mgmt.records import audit
from release_mgmt.rules.windows import Decision, break_glass, decide, details


def load(windows: Sequence[Mapping[str, Any]]) -> list[Window]:
    """Windows from the plain dicts an operator carries."""
    return [Window.model_validate(w) for w in windows]


class WindowsMixin(BaseOperator):
    """Freeze and maintenance windows an operator honours (plain dicts, checked at run time)."""

    release: str

    def _set_windows(
        self, windows: list[dict[str, Any]] | None, on_freeze: str, outside_maintenance: str, expected_seconds: float
    ) -> None:
        self.windows = list(windows or [])
        self.on_freeze = on_freeze
        self.outside_maintenance = outside_maintenance
        self.expected_seconds = expected_seconds

    def _enforce_windows(self, context: Context, environment: str, component: str | None) -> None:
        """Return when the deployment may go now; else defer until it may (or fail, per policy)."""
        if not self.windows:
            return
        fields = {"release": self.release, "run_id": context["run_id"], "environment": environment}
        fields["component"] = component or ""
        expected = timedelta(seconds=self.expected_seconds)
        windows = load(self.windows)

        def decision_now(among: list[Window]) -> Decision:
            at = datetime.now(UTC)
            return decide(
                among, at, environment=environment, release=self.release, component=component, expected=expected
            )

        decision = decision_now(windows)
        if decision.kind == "go":
            audit.emit(self.log, "window.clear", outcome="go", details={"reason": decision.reason}, **fields)
            return
        frozen = decision.reason.startswith("frozen")
        override = self._break_glass(context) if frozen else None
        if override is not None:
            audit.emit(
                self.log,
                "window.freeze_overridden",
                outcome="override",
                details={**details(decision), **override},
                **fields,
            )
            self.log.warning(
                "EMERGENCY: deploying during a freeze (%s) under change %s, approved by %s",
                decision.reason,
                override["change"],
                ", ".join(override["approvers"]),
            )
            decision = decision_now([w for w in windows if w.kind != "freeze"])
            if decision.kind == "go":
                return
            frozen = False
        policy = self.on_freeze if frozen else self.outside_maintenance
        if context["params"].get("dry_run"):
            self.log.info("DRY RUN: would wait: %s", decision.reason)
            audit.emit(self.log, "window.blocked", outcome="dry_run", details=details(decision), **fields)
            return
        if policy == "fail" or decision.until is None:
            audit.emit(self.log, "window.blocked", outcome="failed", details=details(decision), **fields)
            until = f" until {decision.until.isoformat()}" if decision.until else " with no opening in sight"
            setting = "on_freeze" if frozen else "outside_maintenance"
            raise AirflowFailException(f"{environment}: {decision.reason}; blocked{until} ({setting}: {policy})")
        audit.emit(self.log, "window.waiting", outcome="waiting", details=details(decision), **fields)
        self.log.info("waiting until %s (UTC), without a worker: %s", decision.until.isoformat(), decision.reason)
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        self.defer(trigger=DateTimeTrigger(moment=decision.until), method_name="execute")

    @staticmethod
    def _break_glass(context: Context) -> dict[str, Any] | None:
        """This emergency run's approved break-glass, or None."""
        return break_glass(context["params"].get("emergency_change"), context["ti"].xcom_pull(task_ids="break_glass"))

    def _note_for_rollback(self, context: Context, environment: str, component: str) -> None:
        """A rollback always runs; when a freeze is on, say so in the log."""
        if not self.windows:
            return
        freezes = [w for w in load(self.windows) if w.kind == "freeze"]
        decision = decide(
            freezes, datetime.now(UTC), environment=environment, release=self.release, component=component
        )
        if decision.kind == "wait":
            self.log.info("rollback during a freeze is allowed (restoring service): %s", decision.reason)
            audit.emit(
                self.log,
                "window.rollback_allowed",
                release=self.release,
                run_id=context["run_id"],
                environment=environment,
                component=component,
                outcome="allowed",
                details=details(decision),
            )
