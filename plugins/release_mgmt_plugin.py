"""Airflow's plugins loader imports this one module; the package itself is kept out of its walk."""

from release_mgmt.plugin import ReleaseMgmtPlugin

__all__ = ["ReleaseMgmtPlugin"]
