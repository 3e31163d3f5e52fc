"""The AirflowPlugin of release_mgmt (apps, timetables and views are registered here as they come)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


class ReleaseMgmtPlugin(AirflowPlugin):
    """Registers release_mgmt with Airflow."""

    name = "release_mgmt"
