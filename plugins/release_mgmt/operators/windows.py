"""Freeze and maintenance windows at run time: checked when an environment starts and again right
before every deploy (a retry checks again). Waiting defers to the triggerer (no worker held);
rollbacks are never blocked, only logged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from release_mgmt.definition.calendars import Decision, Window, decide
from release_mgmt.records import audit


def load(windows: Sequence[Mapping[str, Any]]) -> list[Window]:
    """Windows from the plain dicts an operator carries."""
    return [Window.model_validate(w) for w in windows]


def enforce(
    operator: Any,
    context: Mapping[str, Any],
    windows: Sequence[Mapping[str, Any]],
    *,
    environment: str,
    component: str | None,
    on_freeze: str,
    outside_maintenance: str,
    expected: timedelta,
    now: datetime | None = None,
) -> None:
    """Return when the deployment may go now; else defer until it may (or fail, per policy)."""
    if not windows:
        return
    decision = decide(
        load(windows),
        now or datetime.now(UTC),
        environment=environment,
        release=operator.release,
        component=component,
        expected=expected,
    )
    fields = {
        "release": operator.release,
        "run_id": context["run_id"],
        "environment": environment,
        "component": component or "",
    }
    if decision.kind == "go":
        audit.emit(operator.log, "window.clear", outcome="go", details={"reason": decision.reason}, **fields)
        return
    frozen = decision.reason.startswith("frozen")
    override = _break_glass(context) if frozen else None
    if override is not None:
        audit.emit(
            operator.log,
            "window.freeze_overridden",
            outcome="override",
            details={**_details(decision), **override},
            **fields,
        )
        operator.log.warning(
            "EMERGENCY: deploying during a freeze (%s) under change %s, approved by %s",
            decision.reason,
            override["change"],
            ", ".join(override["approvers"]),
        )
        unfrozen = [w for w in load(windows) if w.kind != "freeze"]
        decision = decide(
            unfrozen,
            now or datetime.now(UTC),
            environment=environment,
            release=operator.release,
            component=component,
            expected=expected,
        )
        if decision.kind == "go":
            return
        frozen = False
    policy = on_freeze if frozen else outside_maintenance
    details = _details(decision)
    if context["params"].get("dry_run"):
        operator.log.info("DRY RUN: would wait: %s", decision.reason)
        audit.emit(operator.log, "window.blocked", outcome="dry_run", details=details, **fields)
        return
    if policy == "fail" or decision.until is None:
        audit.emit(operator.log, "window.blocked", outcome="failed", details=details, **fields)
        until = f" until {decision.until.isoformat()}" if decision.until else " with no opening in sight"
        setting = "on_freeze" if frozen else "outside_maintenance"
        raise AirflowFailException(f"{environment}: {decision.reason}; blocked{until} ({setting}: {policy})")
    audit.emit(operator.log, "window.waiting", outcome="waiting", details=details, **fields)
    operator.log.info("waiting until %s (UTC), without a worker: %s", decision.until.isoformat(), decision.reason)
    from airflow.providers.standard.triggers.temporal import DateTimeTrigger

    operator.defer(trigger=DateTimeTrigger(moment=decision.until), method_name="execute")


def note_for_rollback(
    operator: Any, context: Mapping[str, Any], windows: Sequence[Mapping[str, Any]], *, environment: str, component: str
) -> None:
    """A rollback always runs; when a freeze is on, say so in the log."""
    if not windows:
        return
    decision = decide(
        [w for w in load(windows) if w.kind == "freeze"],
        datetime.now(UTC),
        environment=environment,
        release=operator.release,
        component=component,
    )
    if decision.kind == "wait":
        operator.log.info("rollback during a freeze is allowed (restoring service): %s", decision.reason)
        audit.emit(
            operator.log,
            "window.rollback_allowed",
            release=operator.release,
            run_id=context["run_id"],
            environment=environment,
            component=component,
            outcome="allowed",
            details=_details(decision),
        )


def _break_glass(context: Mapping[str, Any]) -> dict[str, Any] | None:
    """The approved break-glass of this emergency run (change number, approvers), or None."""
    change = str(context["params"].get("emergency_change") or "").strip()
    if not change:
        return None
    decision = context["ti"].xcom_pull(task_ids="break_glass")
    if not isinstance(decision, dict) or decision.get("decision") != "approved" or not decision.get("approvers"):
        return None  # only people open a freeze: never a timeout
    return {"change": change, "approvers": list(decision.get("approvers", []))}


def _details(decision: Decision) -> dict[str, Any]:
    block = decision.blocking
    return {
        "reason": decision.reason,
        "until": decision.until.isoformat() if decision.until else None,
        "window": block.window.name if block else None,
        "kind": block.window.kind if block else None,
    }
