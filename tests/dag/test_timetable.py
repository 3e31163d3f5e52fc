"""The maintenance-window timetable: next runs, serialization, and Airflow accepting it from the plugin."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.timetables.base import DataInterval, TimeRestriction
from pendulum import instance

from release_mgmt.dag.builder import build_release_dags
from release_mgmt.dag.timetable import MaintenanceWindowTimetable
from release_mgmt.definition.loader import load_file
from release_mgmt.errors import DefinitionError
from tests.helpers import minimal_definition, write_definition

WEEKLY = {
    "name": "weekend",
    "kind": "maintenance",
    "reason": "low traffic",
    "timezone": "Europe/Berlin",
    "cron": "0 22 * * 6",
    "duration": "6h",
    "environments": ["prod"],
}
FREEZE = {
    "name": "close",
    "kind": "freeze",
    "reason": "close",
    "timezone": "UTC",
    "start": "2026-12-20 00:00",
    "end": "2026-12-27 00:00",
}


def _utc(year: int, month: int, day: int, hour: int = 0) -> Any:
    return instance(datetime(year, month, day, hour, tzinfo=UTC))


def test_next_runs_are_window_openings() -> None:
    """Runs start at each opening (Saturday 22:00 Berlin), interval = the window; no catch-up of the past."""
    table = MaintenanceWindowTimetable([WEEKLY, FREEZE], "prod", "shop")
    first = table.next_dagrun_info(
        last_automated_data_interval=None, restriction=TimeRestriction(_utc(2026, 11, 2), None, catchup=True)
    )
    assert first is not None
    assert first.data_interval is not None
    assert (first.data_interval.start, first.data_interval.end) == (_utc(2026, 11, 7, 21), _utc(2026, 11, 8, 3))
    second = table.next_dagrun_info(
        last_automated_data_interval=first.data_interval,
        restriction=TimeRestriction(_utc(2026, 11, 2), None, catchup=True),
    )
    assert second is not None
    assert second.data_interval is not None
    assert second.data_interval.start == _utc(2026, 11, 14, 21)
    summer = table.next_opening(_utc(2026, 6, 1))
    assert summer is not None
    assert summer[0] == _utc(2026, 6, 6, 20)  # 22:00 CEST


def test_without_catchup_past_openings_are_skipped() -> None:
    """With catchup off, the next run is the next opening after now."""
    table = MaintenanceWindowTimetable([WEEKLY], "prod", "shop")
    info = table.next_dagrun_info(
        last_automated_data_interval=DataInterval(_utc(2020, 1, 4, 21), _utc(2020, 1, 5, 3)),
        restriction=TimeRestriction(_utc(2020, 1, 1), None, catchup=False),
    )
    assert info is not None
    assert info.data_interval is not None
    assert info.data_interval.start > instance(datetime.now(UTC))


def test_serialization_round_trip_and_summary() -> None:
    """serialize() gives plain JSON that deserializes to the same schedule."""
    table = MaintenanceWindowTimetable([WEEKLY], "prod", "shop")
    again: Any = MaintenanceWindowTimetable.deserialize(table.serialize())
    assert again.serialize() == table.serialize()
    assert again.next_opening(_utc(2026, 11, 2)) == table.next_opening(_utc(2026, 11, 2))
    assert table.summary == "maintenance windows of prod"
    assert "weekend (0 22 * * 6, Europe/Berlin, 6h)" in table.description


def test_scheduled_release_dag_serializes_with_the_plugin_timetable(tmp_path: Path) -> None:
    """A definition with schedule.at_maintenance_windows gets the timetable and Airflow serializes it."""
    from airflow.serialization.serialized_objects import DagSerialization

    data = minimal_definition("nightly", windows=[WEEKLY], schedule={"at_maintenance_windows": "prod"})
    write_definition(tmp_path, "nightly.yaml", data)
    dag = build_release_dags(tmp_path)["release_nightly"]
    assert isinstance(dag.timetable, MaintenanceWindowTimetable)
    encoded = DagSerialization.to_dict(dag)
    restored = DagSerialization.from_dict(encoded)
    assert restored.timetable.summary == "maintenance windows of prod"


def test_schedule_needs_a_maintenance_window(tmp_path: Path) -> None:
    """Scheduling at an environment without maintenance windows is a definition error."""
    data = minimal_definition("nightly", windows=[FREEZE], schedule={"at_maintenance_windows": "prod"})
    with pytest.raises(
        DefinitionError,
        match=r"^nightly.yaml:\d+: schedule.at_maintenance_windows: prod has no "
        r"maintenance window \(define one in windows or a calendar\) to schedule runs at$",
    ):
        load_file(write_definition(tmp_path, "nightly.yaml", data), display="nightly.yaml")


def test_dag_processor_accepts_a_scheduled_release(tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's DagBag over dags/ builds the scheduled release with the plugin's timetable, without import errors."""
    from airflow.dag_processing.dagbag import DagBag

    data = minimal_definition("nightly", windows=[WEEKLY], schedule={"at_maintenance_windows": "prod"})
    write_definition(tmp_path, "nightly.yaml", data)
    monkeypatch.setenv("RELEASE_MGMT_RELEASES_DIR", str(tmp_path))
    bag = DagBag(dag_folder=str(repo / "dags"))
    assert bag.import_errors == {}
    timetable: Any = bag.dags["release_nightly"].timetable
    assert timetable.summary == "maintenance windows of prod"
