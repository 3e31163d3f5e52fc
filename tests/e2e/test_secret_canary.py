"""A secret canary on a real Airflow (issue 12, row 4): a connection password and a masked variable are printed
by a failing step of a run whose prod has a change; every place a person or auditor reads afterwards -- the
change and its approval records through the API, every task log through the REST API, the evidence report
from the CLI, the notification e-mails and webhook posts (issue 19) -- is searched for them: 0 hits."""

from __future__ import annotations

import json

import pytest

from tests.helpers import command, minimal_definition, write_definition
from tests.release_runs import release_mgmt_cli
from tests.servers import Reply, ScriptedHTTP, SMTPServer
from tools.local_airflow import LocalAirflow

pytestmark = pytest.mark.e2e
PASSWORD = "canary-pw-5b7e0c9d1a"
API_KEY = "canary-key-e2f41d88c3"
CHANGES = "/change-service/api/now/table/change_request"


@pytest.fixture(scope="module")
def sinks_outside():
    """Where notifications go: a real SMTP server and a webhook receiver on loopback."""
    with SMTPServer() as smtp, ScriptedHTTP() as hooks:
        hooks.script("/hook", default=Reply(200, "ok"))
        yield smtp, hooks


@pytest.fixture(scope="module")
def canary_airflow(tmp_path_factory: pytest.TempPathFactory, sinks_outside):
    """A real Airflow whose workers hold a connection and a sensitive variable, and whose release notifies."""
    smtp, hooks = sinks_outside
    base = tmp_path_factory.mktemp("canary")
    (base / "releases").mkdir()
    (base / "directory.yaml").write_text(
        "channels:\n  mail: {connection: canary_smtp, kind: email}\n  chat: {connection: canary_hook, kind: webhook}\n"
        "users:\n  alice: {email: alice@example.com}\n"
    )
    conn = {"conn_type": "postgres", "host": "127.0.0.1", "login": "app", "password": PASSWORD}
    extra = {
        "AIRFLOW_CONN_CANARY_DB": json.dumps(conn),
        "AIRFLOW_VAR_CANARY_API_KEY": API_KEY,
        "AIRFLOW_CONN_CANARY_SMTP": smtp.connection(),
        "AIRFLOW_CONN_CANARY_HOOK": json.dumps({"conn_type": "http", "host": f"{hooks.url}/hook"}),
    }
    server = LocalAirflow(base / "home", base / "releases", extra_env=extra).start()
    try:
        yield server
    finally:
        server.stop()


def test_secrets_printed_by_a_failing_step_reach_no_sink(canary_airflow: LocalAirflow, sinks_outside) -> None:
    """The failing deploy's output (password and key) is in no change field, approval, task log, report, e-mail
    or webhook post."""
    airflow = canary_airflow
    smtp, hooks = sinks_outside
    data = minimal_definition(
        "canary",
        environments=[
            {
                "name": "prod",
                "change": {"type": "normal", "poll": "1s", "authorizers": {"users": ["bob", "carol"]}},
            }
        ],
    )
    data["components"][0]["deploy"] = command(
        'echo "connecting as app with $DB_PW, key $API_KEY"; exit 3',
        env={"DB_PW": "{{ conn.canary_db.password }}", "API_KEY": "{{ var.value.canary_api_key }}"},
    )
    data["notify"] = [
        {"events": ["deploy.failed", "run.failed", "change.*"], "channels": ["mail", "chat"], "to": ["alice"]}
    ]
    write_definition(airflow.releases, "canary.yaml", data)
    dag = "release_canary"
    airflow.wait_for(lambda: airflow.dag_ready(dag), 120, f"{dag} parsed")
    run = airflow.trigger(dag, "alice")
    airflow.wait_state(dag, run, "prod.change_authorized", "deferred")
    [change] = [c for c in airflow.api("GET", CHANGES)["result"] if run in c["correlation_id"]]
    airflow.api("POST", f"/change-service/api/release_mgmt/change_request/{change['sys_id']}/approve", "bob", {})
    assert airflow.wait_finished(dag, run) == "failed"

    record = airflow.api("GET", f"{CHANGES}/{change['sys_id']}")["result"]
    assert record["close_code"] == "unsuccessful"
    assert "connecting as app with ***, key ***" in record["work_notes"]  # the failure is told, masked
    approvals = airflow.api(
        "GET", f"/change-service/api/now/table/sysapproval_approver?sysparm_query=sysapproval={change['sys_id']}"
    )
    logs = {
        task: airflow.log(dag, run, task, attempt)
        for task, tries in _tries(airflow, dag, run).items()
        for attempt in range(1, tries + 1)
    }
    assert "connecting as app with ***, key ***" in logs["prod.deploy_api"]
    airflow.wait_for(lambda: any(b"run.failed" in s.body for s in hooks.seen), 60, "the run.failed post")
    posts = "\n".join(s.body.decode() for s in hooks.seen)
    mails = "\n".join(m.message.as_string() for m in smtp.mails)
    assert "Deploy failed: api 1.0.0 in prod" in posts
    assert "connecting as app with ***, key ***" in posts  # the failure is told, masked
    assert len(smtp.mails) >= 3  # deploy.failed, change.authorized, run.failed: to alice
    report = release_mgmt_cli(airflow, "admin", "audit", dag, run, "--format", "json")
    markdown = release_mgmt_cli(airflow, "admin", "audit", dag, run)
    sinks = {
        "change": json.dumps(record),
        "approvals": json.dumps(approvals),
        "task logs": "\n".join(logs.values()),
        "audit json": report.stdout + report.stderr,
        "audit markdown": markdown.stdout + markdown.stderr,
        "webhook posts": posts,
        "e-mails": mails,
    }
    assert "deploy.finished" in sinks["audit json"]
    leaks = [f"{name}: {secret}" for name, text in sinks.items() for secret in (PASSWORD, API_KEY) if secret in text]
    assert leaks == []


def _tries(airflow: LocalAirflow, dag: str, run: str) -> dict[str, int]:
    found = airflow.api("GET", f"/api/v2/dags/{dag}/dagRuns/{run}/taskInstances?limit=1000")["task_instances"]
    return {t["task_id"]: int(t.get("try_number") or 0) for t in found}
