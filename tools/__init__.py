"""Tools of this repository that are not shipped in the package: the local multi-process Airflow
(``local_airflow``) and ``run_once``, which ``scripts/run-local.sh --once`` runs."""
