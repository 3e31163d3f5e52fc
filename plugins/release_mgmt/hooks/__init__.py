"""Hooks of release_mgmt's own (the others come from Airflow's providers)."""
