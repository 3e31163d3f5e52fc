"""``python -m release_mgmt``: one module per command group (definitions, runs, approvals), ``rest`` the client
of Airflow's REST API with the caller's credentials."""

from release_mgmt.cli.main import main

__all__ = ["main"]
