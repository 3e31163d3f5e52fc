"""docker-compose.yml cannot be started here (no container engine): check its shape and that it names the
versions requirements.txt pins and the settings file the local multi-process Airflow uses."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tools.local_airflow import SHARED_SETTINGS, shared_settings

SERVICES = {
    "postgres",
    "redis",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
}


def _compose(repo: Path) -> dict:
    return yaml.safe_load((repo / "docker-compose.yml").read_text())


def test_services_and_health_checks(repo: Path) -> None:
    """Every component of Airflow's official layout is there, and each long-running one has a health check."""
    services = _compose(repo)["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        if name != "airflow-init":
            assert "healthcheck" in service, name
    assert services["airflow-init"]["command"][-1].splitlines()[0] == "airflow db migrate"


def test_airflow_services_share_settings_mounts_and_secrets(repo: Path) -> None:
    """Same image, same settings file as the tests, the repo mounted, one JWT secret and execution API URL."""
    for name, service in _compose(repo)["services"].items():
        if not name.startswith("airflow-"):
            continue
        assert service["env_file"] == ["deploy/airflow.env"], name
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${AIRFLOW_JWT_SECRET")
        # no default: compose refuses to start until the release tasks' own secret is set
        assert env["RELEASE_MGMT_SERVICE_SECRET"].startswith("${RELEASE_MGMT_SERVICE_SECRET:?"), name
        assert env["RELEASE_MGMT_CHANGE_DB"].startswith("postgresql")
        assert {"./dags:/opt/airflow/dags", "./plugins:/opt/airflow/plugins", "./include:/opt/airflow/include"} <= set(
            service["volumes"]
        )
    assert repo / "deploy/airflow.env" == SHARED_SETTINGS
    assert shared_settings()["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"


def test_image_matches_the_pinned_airflow(repo: Path) -> None:
    """The Dockerfile's base image and pins are the Airflow version requirements.txt pins."""
    found = re.search(r"^apache-airflow==(\S+)$", (repo / "requirements.txt").read_text(), re.M)
    assert found is not None
    pinned = found.group(1)
    dockerfile = (repo / "deploy/Dockerfile").read_text()
    assert f"FROM apache/airflow:{pinned}-python3.11" in dockerfile
    install = "pip install --no-cache-dir -r /opt/release_mgmt/requirements.txt -c /opt/release_mgmt/constraints.txt"
    assert install in dockerfile
    assert _compose(repo)["x-airflow-common"]["image"] == f"release-mgmt-airflow:{pinned}"


def test_the_executor_of_the_compose_file_is_installed(repo: Path) -> None:
    """CeleryExecutor with Redis: the Celery provider and the database drivers are pinned in requirements.txt
    (the image installs nothing else; tests/e2e/test_distributed.py runs the same executor natively)."""
    compose = _compose(repo)
    env = compose["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    requirements = (repo / "requirements.txt").read_text()
    for package in ("apache-airflow-providers-celery==", "psycopg2-binary==", "asyncpg=="):
        assert package in requirements
