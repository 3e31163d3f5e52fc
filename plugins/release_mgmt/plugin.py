"""The AirflowPlugin of release_mgmt (apps, timetables and views are registered here as they come)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from release_mgmt.change_service.in_airflow import airflow_app
from release_mgmt.dag.timetable import MaintenanceWindowTimetable


class ReleaseMgmtPlugin(AirflowPlugin):
    """Registers release_mgmt with Airflow: the maintenance-window timetable and the built-in change
    service (at /change-service, for authenticated Airflow users only)."""

    name = "release_mgmt"
    timetables = [MaintenanceWindowTimetable]
    fastapi_apps = [{"app": airflow_app(), "url_prefix": "/change-service", "name": "release_mgmt change service"}]
