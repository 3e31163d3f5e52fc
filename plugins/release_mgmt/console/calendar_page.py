"""The calendar: freeze and maintenance windows per environment (inline and shared calendars), the scheduled runs
of the maintenance-window timetable and the past runs, for a month or a week. The server sends instants in UTC;
the page lays them out in the viewer's time zone (UTC on hover), and lists them in a table that works without
script."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from release_mgmt.console.app import Settings, Viewer, local_time, render
from release_mgmt.console.pages import SettingsDep, ViewerDep, readable
from release_mgmt.definition.loader import LoadedDefinition
from release_mgmt.planning.graph import dag_id_for

router = APIRouter()
VIEWS = ("month", "week")
#: at most this many window openings per page (a window opening every minute must not cost the page)
MAX_OCCURRENCES = 2000


def period(view: str, start: str, today: date) -> tuple[date, date, date, date]:
    """(first day, day after the last, previous period's first day, next period's first day)."""
    if view not in VIEWS:
        raise HTTPException(400, detail=f"view must be month or week, not {view[:20]!r}")
    try:
        day = date.fromisoformat(start) if start else today
    except ValueError:
        raise HTTPException(400, detail=f"start must be a date like 2026-12-01, not {start[:40]!r}") from None
    if view == "week":
        first = day - timedelta(days=day.weekday())
        return first, first + timedelta(days=7), first - timedelta(days=7), first + timedelta(days=7)
    first = day.replace(day=1)
    after = (first + timedelta(days=32)).replace(day=1)
    return first, after, (first - timedelta(days=1)).replace(day=1), after


def window_events(loaded: Iterable[LoadedDefinition], low: datetime, high: datetime) -> list[dict[str, Any]]:
    """One event per window opening in [low, high), with every release and environment it applies to."""
    found: dict[tuple[str, str, datetime], dict[str, Any]] = {}
    budget = MAX_OCCURRENCES
    for item in loaded:
        defn = item.definition
        for window in defn.windows:
            envs = [e.name for e in defn.environments if window.applies_to(e.name, defn.name)]
            if not envs:
                continue
            for occ in window.occurrences(low, high):
                budget -= 1
                if budget < 0:
                    break
                entry = found.setdefault(
                    (window.kind, window.name, occ.start),
                    {
                        "kind": window.kind,
                        "title": f"{window.kind} {window.name}",
                        "reason": window.reason,
                        "start": local_time(occ.start),
                        "end": local_time(occ.end),
                        "zone": window.timezone,
                        "places": set(),
                    },
                )
                entry["places"].update(f"{defn.name}/{env}" for env in envs)
    events = sorted(found.values(), key=lambda e: (e["start"]["iso"], e["title"]))
    return [{**e, "places": sorted(e["places"])} for e in events]


@router.get("/calendar")
def calendar_page(
    request: Request,
    view: str = "month",
    start: str = "",
    *,
    viewer: Viewer = ViewerDep,
    config: Settings = SettingsDep,
) -> Response:
    """Windows, scheduled runs and past runs of the releases the viewer may read."""
    now = config.now()
    first, after, previous, following = period(view, start, now.astimezone(UTC).date())
    # a day more on both sides: the page shows the period in the viewer's zone, up to 14 hours from UTC
    low = datetime.combine(first, datetime.min.time(), UTC) - timedelta(days=1)
    high = datetime.combine(after, datetime.min.time(), UTC) + timedelta(days=1)
    loaded, broken = readable(viewer, config)
    dag_ids = [dag_id_for(i.definition.name) for i in loaded]
    events = window_events(loaded, low, high)
    for run in config.sources.runs_between(dag_ids, low, high):
        when = run.start or run.run_after
        events.append(
            {
                "kind": "run",
                "title": f"{run.dag_id.removeprefix('release_')}: {run.state or 'queued'}",
                "reason": f"run {run.run_id} by {run.triggered_by or 'the scheduler'}",
                "start": local_time(when),
                "end": local_time(run.end or when),
                "link": f"runs/{run.dag_id}/{run.run_id}",
                "places": [run.dag_id.removeprefix("release_")],
            }
        )
    for dag_id, when in sorted(config.sources.next_runs(dag_ids).items()):
        if low <= when < high:
            name = dag_id.removeprefix("release_")
            events.append(
                {
                    "kind": "scheduled",
                    "title": f"{name}: scheduled run",
                    "reason": "the maintenance-window timetable starts the next run",
                    "start": local_time(when),
                    "end": local_time(when),
                    "places": [name],
                }
            )
    events.sort(key=lambda e: (e["start"]["iso"], e["kind"], e["title"]))
    return render(
        request,
        "calendar.html",
        view=view,
        first=first.isoformat(),
        after=after.isoformat(),
        previous=previous.isoformat(),
        following=following.isoformat(),
        events=events,
        broken=broken,
        releases=len(loaded),
    )
