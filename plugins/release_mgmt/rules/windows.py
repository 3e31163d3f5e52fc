"""Freeze and maintenance windows as decisions: may a deployment start now, or from when; what is coming.

Pure: the windows (definition/calendars.py) in, a :class:`Decision` out. The operators enforce it
(operators/windows.py), the calendar command and the timetable read :func:`upcoming`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from release_mgmt.definition.calendars import SEARCH_LIMIT, Occurrence, Window
from release_mgmt.definition.durations import format_duration


@dataclass(frozen=True)
class Decision:
    """What a deployment may do at an instant: ``go``, or ``wait`` until ``until``; ``reason`` says why."""

    kind: Literal["go", "wait"]
    until: datetime | None
    reason: str
    blocking: Occurrence | None = None


def decide(
    windows: Sequence[Window],
    t: datetime,
    *,
    environment: str,
    release: str,
    component: str | None = None,
    expected: timedelta = timedelta(0),
    horizon: timedelta = timedelta(days=400),
) -> Decision:
    """Whether a deployment may start at ``t``, or from when it could (``wait``; ``until`` None: never
    within ``horizon``). Freezes block; if the scope has maintenance windows, the deployment must
    start inside one with at least ``expected`` of it left."""
    scoped = [w for w in windows if w.applies_to(environment, release, component)]
    freezes = [w for w in scoped if w.kind == "freeze"]
    maintenance = [w for w in scoped if w.kind == "maintenance"]
    candidate, first_reason, first_block = t, "", None
    for _ in range(SEARCH_LIMIT):
        if candidate - t > horizon:
            break
        frozen = [o for w in freezes if (o := w.occurrence_at(candidate)) is not None]
        if frozen:
            block = max(frozen, key=lambda o: o.end)
            first_reason, first_block = first_reason or f"frozen: {block.describe()}", first_block or block
            candidate = block.end
            continue
        if maintenance:
            opening = _maintenance_start(maintenance, candidate, expected, t + horizon)
            if opening is None:
                break
            start, occ = opening
            if start > candidate:
                if first_reason.startswith("frozen") and "; then" not in first_reason:
                    first_reason += f"; then waiting for the next maintenance window: {occ.describe()}"
                first_reason = first_reason or (
                    f"outside maintenance windows; next with {format_duration(expected)} left: {occ.describe()}"
                )
                first_block = first_block or occ
                candidate = start
                continue
        if candidate == t:
            return Decision("go", None, "no freeze, inside a maintenance window" if maintenance else "no freeze")
        return Decision("wait", candidate, first_reason, first_block)
    return Decision("wait", None, first_reason or "no maintenance window opens in time", first_block)


def _maintenance_start(
    windows: Sequence[Window], at: datetime, expected: timedelta, until: datetime
) -> tuple[datetime, Occurrence] | None:
    """The earliest instant >= ``at`` inside a maintenance occurrence with ``expected`` left, and that occurrence."""
    best: tuple[datetime, Occurrence] | None = None
    for window in windows:
        for occ in window.occurrences(at, until):
            start = max(occ.start, at)
            if occ.end - start >= expected and occ.end > start:
                if best is None or start < best[0]:
                    best = (start, occ)
                break
    return best


def upcoming(windows: Sequence[Window], after: datetime, until: datetime) -> list[Occurrence]:
    """Every occurrence open at some instant in [after, until), by start."""
    found = [occ for window in windows for occ in window.occurrences(after, until)]
    return sorted(found, key=lambda o: (o.start, o.window.name))


def break_glass(emergency_change: Any, decision: Any) -> dict[str, Any] | None:
    """The approved break-glass of an emergency run (change number, approvers), or None: only people open a
    freeze, never a timeout. ``decision`` is what the ``break_glass`` task returned."""
    change = str(emergency_change or "").strip()
    if not change:
        return None
    if not isinstance(decision, Mapping) or decision.get("decision") != "approved" or not decision.get("approvers"):
        return None
    return {"change": change, "approvers": list(decision.get("approvers", []))}


def details(decision: Decision) -> dict[str, Any]:
    """A decision as audit-line details: why, until when, which window."""
    block = decision.blocking
    return {
        "reason": decision.reason,
        "until": decision.until.isoformat() if decision.until else None,
        "window": block.window.name if block else None,
        "kind": block.window.kind if block else None,
    }
