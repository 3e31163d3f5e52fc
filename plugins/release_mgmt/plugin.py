"""The AirflowPlugin of release_mgmt: the timetable, the built-in change service, the release console."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from release_mgmt.change_service.in_airflow import airflow_app
from release_mgmt.console.in_airflow import CHANGE_SERVICE, EXTERNAL_VIEWS, PREFIX, airflow_console
from release_mgmt.dag.timetable import MaintenanceWindowTimetable


class ReleaseMgmtPlugin(AirflowPlugin):
    """Registers release_mgmt with Airflow: the maintenance-window timetable, the built-in change service (at
    /change-service) and the release console (at /release-console, shown in the UI's navigation and as tabs on
    the DAG and run pages), both for signed-in Airflow users only."""

    name = "release_mgmt"
    timetables = [MaintenanceWindowTimetable]
    fastapi_apps = [
        {"app": airflow_app(), "url_prefix": CHANGE_SERVICE, "name": "release_mgmt change service"},
        {"app": airflow_console(), "url_prefix": PREFIX, "name": "release_mgmt console"},
    ]
    external_views = EXTERNAL_VIEWS
