"""Deferrable waits that run on Airflow's triggerer."""
