"""The AirflowPlugin of release_mgmt (apps, timetables and views are registered here as they come)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from release_mgmt.timetables import MaintenanceWindowTimetable


class ReleaseMgmtPlugin(AirflowPlugin):
    """Registers release_mgmt with Airflow: the maintenance-window timetable."""

    name = "release_mgmt"
    timetables = [MaintenanceWindowTimetable]
