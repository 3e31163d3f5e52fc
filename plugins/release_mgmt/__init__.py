"""release_mgmt: release definitions (YAML) turned into Airflow release DAGs."""

__version__ = "0.1.0"
