"""A timetable that schedules a release's runs at the openings of an environment's maintenance windows.

For teams that let releases run unattended inside their windows. Registered by the plugin; DAGs
use it through ``schedule: {at_maintenance_windows: <environment>}`` in the definition.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.timetables.base import DagRunInfo, DataInterval, Timetable
from pendulum import DateTime, instance

from release_mgmt.definition.calendars import Window
from release_mgmt.definition.durations import format_duration

HORIZON = timedelta(days=800)


class MaintenanceWindowTimetable(Timetable):
    """One run at the start of each opening of the maintenance windows of ``environment``."""

    def __init__(self, windows: list[dict[str, Any]], environment: str, release: str) -> None:
        self.windows = list(windows)
        self.environment = environment
        self.release = release
        self._models = [
            w
            for w in (Window.model_validate(x) for x in self.windows)
            if w.kind == "maintenance" and w.applies_to(environment, release)
        ]

    @property
    def summary(self) -> str:
        return f"maintenance windows of {self.environment}"

    @property
    def description(self) -> str:  # type: ignore[override]
        parts = [
            f"{w.name} ({w.cron or w.rrule or 'once'}, {w.timezone}, "
            f"{format_duration(w.duration) if w.duration else 'one-off'})"
            for w in self._models
        ]
        return f"At the openings of the maintenance windows of {self.environment}: " + "; ".join(parts)

    def serialize(self) -> dict[str, Any]:
        return {"windows": self.windows, "environment": self.environment, "release": self.release}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        return cls(data["windows"], data["environment"], data["release"])

    def validate(self) -> None:
        if not self._models:
            from airflow.exceptions import AirflowTimetableInvalid

            raise AirflowTimetableInvalid(f"{self.release} has no maintenance window for {self.environment}")

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        return DataInterval.exact(run_after)

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: Any
    ) -> DagRunInfo | None:
        from airflow.sdk import timezone

        candidates: list[Any] = [last_automated_data_interval.start if last_automated_data_interval else None]
        if restriction.earliest is not None:
            candidates.append(restriction.earliest - timedelta(microseconds=1))
        if not restriction.catchup:  # never schedule openings that already passed
            candidates.append(timezone.utcnow())
        known = [c for c in candidates if c is not None]
        opening = self.next_opening(max(known) if known else timezone.utcnow())
        if opening is None or (restriction.latest is not None and opening[0] > restriction.latest):
            return None
        return DagRunInfo.interval(start=instance(opening[0]), end=instance(opening[1]))

    def next_opening(self, after: Any) -> tuple[Any, Any] | None:
        """(start, end) of the first occurrence starting strictly after ``after``."""
        starts = []
        for window in self._models:
            for occ in window.occurrences(after, after + HORIZON):
                if occ.start > after:
                    starts.append((occ.start, occ.end))
                    break
        return min(starts) if starts else None
