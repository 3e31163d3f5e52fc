"""A release over SSH hosts, a Kubernetes Deployment and an HTTP deploy API, end to end with dag.test().

Success moves every target to the new version; a failing validation rolls every touched target
back to its recorded version; no connection secret appears in the output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from release_mgmt.dag.builder import build_release_dags
from tests.helpers import minimal_definition, write_definition
from tests.release_runs import states, use_releases
from tests.servers import Reply

pytestmark = pytest.mark.e2e
PASSWORD = "s3cr3t-pa55"  # the HTTP connection's password (tests/servers.py)


def _definition(files: Path) -> dict:
    ssh = {"type": "ssh", "connections": ["db_a", "db_b"], "connect_attempts": 1}
    return minimal_definition(
        "mixed",
        environments=[{"name": "prod"}],
        components=[
            {
                "name": "db",
                "version": "1.0.0",
                "deploy": {**ssh, "command": f"echo {{{{ version }}}} > {files}/db_$RELEASE_TARGET"},
                "validate": [{**ssh, "command": f'test "$(cat {files}/db_$RELEASE_TARGET)" = {{{{ version }}}}'}],
                "rollback": {**ssh, "command": f"echo {{{{ previous_version }}}} > {files}/db_$RELEASE_TARGET"},
            },
            {
                "name": "api",
                "version": "1.0.0",
                "depends_on": ["db"],
                "deploy": {
                    "type": "kubernetes",
                    "connection": "k8s_test",
                    "namespace": "shop",
                    "deployment": "api",
                    "container": "app",
                    "image": "registry/api:{{ version }}",
                    "poll_seconds": 0.1,
                },
                "validate": [
                    {
                        "type": "metrics_check",
                        "connection": "deploy_api",
                        "query": "error_rate",
                        "op": "<",
                        "threshold": 0.05,
                        "within_seconds": 1,
                        "interval_seconds": 0.2,
                    }
                ],
                "rollback": {
                    "type": "kubernetes",
                    "connection": "k8s_test",
                    "namespace": "shop",
                    "deployment": "api",
                    "container": "app",
                    "poll_seconds": 0.1,
                },
            },
            {
                "name": "notify",
                "version": "1.0.0",
                "deploy": {
                    "type": "http",
                    "connection": "deploy_api",
                    "endpoint": "/deploy",
                    "json": {"app": "{{ component }}", "version": "{{ version }}"},
                },
                "validate": [
                    {
                        "type": "http_check",
                        "connection": "deploy_api",
                        "endpoint": "/status",
                        "json_field": "ok",
                        "equals": "True",
                    }
                ],
                "rollback": {
                    "type": "http",
                    "connection": "deploy_api",
                    "endpoint": "/deploy",
                    "json": {"app": "{{ component }}", "version": "{{ previous_version }}"},
                },
            },
        ],
    )


def _error_rate(value: float) -> Reply:
    return Reply(
        200,
        {
            "status": "success",
            "data": {"resultType": "vector", "result": [{"metric": {"app": "api"}, "value": [1.0, str(value)]}]},
        },
    )


def test_mixed_release_success_then_failed_validation_rolls_everything_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path, ssh_server, http_server, kubernetes, capfd
) -> None:
    """1.0.0 reaches every target; 2.0.0 fails the api metrics check and db, api and notify return to 1.0.0."""
    files = tmp_path / "files"
    files.mkdir()
    key = ssh_server.client_key.read_text()
    for conn_id in ("DB_A", "DB_B"):  # the private key inline in the connection: it must never be logged
        conn = json.loads(ssh_server.connection())
        conn["extra"] = {"private_key": key, "no_host_key_check": "true"}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id}", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_CONN_DEPLOY_API", http_server.connection())
    kubernetes.add("shop", "api", "registry/api:0.9.0")
    http_server.script("/deploy", default=Reply(202, {"accepted": True}))
    http_server.script("/status", default=Reply(200, {"ok": True}))
    http_server.script("/api/v1/query", default=_error_rate(0.01))
    write_definition(tmp_path / "releases", "mixed.yaml", _definition(files))
    use_releases(tmp_path / "releases", monkeypatch)
    dag = build_release_dags(tmp_path / "releases")["release_mixed"]

    first = dag.test()
    assert str(first.state) == "success", states(first)
    assert {p.name: p.read_text().strip() for p in files.iterdir()} == {"db_db_a": "1.0.0", "db_db_b": "1.0.0"}
    assert kubernetes.image("shop", "api") == "registry/api:1.0.0"

    http_server.script("/api/v1/query", default=_error_rate(0.5))
    http_server.seen.clear()
    second = dag.test(run_conf={"version_db": "2.0.0", "version_api": "2.0.0", "version_notify": "2.0.0"})
    got = states(second)
    assert str(second.state) == "failed"
    assert got["prod.validate_api"] == "failed"
    assert {got[f"prod.rollback_{c}"] for c in ("db", "api", "notify")} == {"success"}
    assert {p.name: p.read_text().strip() for p in files.iterdir()} == {"db_db_a": "1.0.0", "db_db_b": "1.0.0"}
    assert kubernetes.image("shop", "api") == "registry/api:1.0.0"
    bodies = [json.loads(s.body) for s in http_server.seen if s.path == "/deploy"]
    assert bodies == [{"app": "notify", "version": "2.0.0"}, {"app": "notify", "version": "1.0.0"}]

    out = capfd.readouterr()
    text = out.out + out.err
    assert "rollout: generation" in text  # the logs were captured
    for secret in (PASSWORD, kubernetes.token, key.splitlines()[1]):
        assert secret not in text
