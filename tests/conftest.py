"""Test set-up: a throw-away AIRFLOW_HOME (set before Airflow is imported) and shared fixtures."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_home = Path(tempfile.mkdtemp(prefix="release_mgmt_airflow_home_"))
os.environ["AIRFLOW_HOME"] = str(_home)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ.pop("RELEASE_MGMT_RELEASES_DIR", None)

import pytest  # noqa: E402 - after the environment above

#: the release-run fixtures (sample, airflow) and helpers, shared by tests/operators and tests/e2e
pytest_plugins = ["tests.release_runs"]


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata database (SQLite) in the session's AIRFLOW_HOME."""
    from airflow.utils.db import initdb

    initdb()
    return _home


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory: pytest.TempPathFactory):
    """A real OpenSSH server on loopback for the whole session."""
    from tests.servers import sshd

    with sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server on loopback for the session (Debian's postgresql)."""
    from tests.servers import postgres

    with postgres() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server():
    """A real Redis on loopback for the session (Debian's redis-server): the Celery broker."""
    from tests.servers import redis

    with redis() as url:
        yield url


@pytest.fixture
def http_server():
    """A scripted HTTP server on loopback (real sockets, real HTTP)."""
    from tests.servers import ScriptedHTTP

    with ScriptedHTTP() as server:
        yield server


@pytest.fixture
def kubernetes(monkeypatch: pytest.MonkeyPatch):
    """A local apps/v1 Deployment API server, registered as Airflow connection k8s_test."""
    from tests.servers import FakeKubernetes

    with FakeKubernetes() as server:
        monkeypatch.setenv("AIRFLOW_CONN_K8S_TEST", server.connection())
        yield server


@pytest.fixture
def smtp_server():
    """A real SMTP server on loopback (aiosmtpd) that requires a login and keeps what it accepts."""
    from tests.servers import SMTPServer

    with SMTPServer() as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's package; .ci/run installs it), driven by Playwright."""
    import shutil

    from playwright.sync_api import sync_playwright

    chromium_path = "/usr/bin/chromium"
    assert shutil.which("chromium") or Path(chromium_path).exists(), (
        "install Debian's chromium (apt-get install chromium)"
    )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()
