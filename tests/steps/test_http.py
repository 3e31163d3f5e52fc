"""http and http_check steps against a real HTTP server on loopback, through Airflow's HTTP provider."""

from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path

import pytest

from release_mgmt.errors import StepError
from release_mgmt.steps import STEP_ADAPTER, StepContext
from tests.servers import Reply


@pytest.fixture
def ctx(tmp_path: Path) -> StepContext:
    return StepContext(
        release="shop",
        environment="prod",
        component="api",
        version="1.2.3",
        action="deploy",
        workdir=str(tmp_path),
        log=logging.getLogger("test.http"),
    )


@pytest.fixture
def deploy_api(http_server, monkeypatch: pytest.MonkeyPatch):
    """The scripted server registered as Airflow HTTP connection deploy_api (basic auth)."""
    monkeypatch.setenv("AIRFLOW_CONN_DEPLOY_API", http_server.connection())
    return http_server


def _http(**fields):
    return STEP_ADAPTER.validate_python(
        {"type": "http", "connection": "deploy_api", "endpoint": "/deploy", "backoff_seconds": 0.05, **fields}
    )


def test_posts_json_with_connection_credentials(deploy_api, ctx) -> None:
    """The body goes out as JSON, with the connection's basic auth."""
    deploy_api.script("/deploy", Reply(202, {"id": 7}))
    _http(json={"component": "api", "version": "1.2.3"}).run(ctx)
    seen = deploy_api.seen[0]
    assert (seen.method, seen.path) == ("POST", "/deploy")
    assert json.loads(seen.body) == {"component": "api", "version": "1.2.3"}
    assert seen.headers["Authorization"] == "Basic " + base64.b64encode(b"deployer:s3cr3t-pa55").decode()


def test_retries_5xx_and_honours_retry_after(deploy_api, ctx) -> None:
    """503 then 429 (Retry-After: 1) then 200: three calls, and the wait after 429 is at least a second."""
    deploy_api.script("/deploy", Reply(503, "busy"), Reply(429, "slow down", {"Retry-After": "1"}), Reply(200, "ok"))
    _http(retries=3).run(ctx)
    times = [s.at for s in deploy_api.seen]
    assert len(times) == 3
    assert times[2] - times[1] >= 1.0


def test_storm_of_errors_fails_after_bounded_retries(deploy_api, ctx) -> None:
    """A server answering 500 forever gets 1 + retries calls, then the step fails with status and body."""
    deploy_api.script("/deploy", default=Reply(500, "database on fire"))
    with pytest.raises(StepError, match=r"POST deploy_api:/deploy failed: HTTP 500: database on fire"):
        _http(retries=2).run(ctx)
    assert len(deploy_api.seen) == 3


def test_client_error_is_not_retried(deploy_api, ctx) -> None:
    """A 400 is final: one call, and the message carries the body excerpt."""
    deploy_api.script("/deploy", Reply(400, {"error": "unknown version"}))
    with pytest.raises(StepError, match="HTTP 400"):
        _http(retries=3).run(ctx)
    assert len(deploy_api.seen) == 1


def test_unknown_connection(ctx) -> None:
    """A missing connection id says which one to add."""
    with pytest.raises(StepError, match="nowhere: no such Airflow connection"):
        _http(connection="nowhere").run(ctx)


def _check(url: str, **fields):
    return STEP_ADAPTER.validate_python(
        {"type": "http_check", "url": url, "interval_seconds": 0.05, "within_seconds": 5, **fields}
    )


def test_check_json_field_and_consecutive_successes(http_server, ctx) -> None:
    """The version must be reported 3 times in a row: an old answer in between resets the count."""
    ok, old = Reply(200, {"version": "1.2.3"}), Reply(200, {"version": "1.2.2"})
    http_server.script("/health", ok, old, ok, ok, default=ok)
    _check(http_server.url + "/health", json_field="version", equals="1.2.3", successes=3).run(ctx)
    assert len(http_server.seen) == 5


def test_check_fails_within_budget_with_last_problem(http_server, ctx) -> None:
    """An endpoint that keeps answering 503 fails the check in time, naming the last problem."""
    http_server.script("/health", default=Reply(503, "warming up"))
    with pytest.raises(StepError, match=r"did not pass 1 time\(s\) in a row within 1s .*HTTP 503: warming up"):
        _check(http_server.url + "/health", within_seconds=1).run(ctx)


def test_check_latency_and_body(http_server, ctx) -> None:
    """A slow answer fails max_latency_ms; body_contains looks for text."""
    http_server.script("/slow", default=Reply(200, "ready", delay=0.3))
    with pytest.raises(StepError, match="over max_latency_ms 100"):
        _check(http_server.url + "/slow", max_latency_ms=100, within_seconds=0.5).run(ctx)
    http_server.script("/page", default=Reply(200, "<h1>shop ready</h1>"))
    _check(http_server.url + "/page", body_contains="shop ready").run(ctx)


def test_check_through_connection(deploy_api, ctx) -> None:
    """connection + endpoint works like url: the connection's base URL and its login (HTTP Basic) are used, and a
    body that does not match fails the check."""
    deploy_api.script("/health", default=Reply(200, {"app": {"version": "1.2.3"}}))
    _check_conn = STEP_ADAPTER.validate_python(
        {
            "type": "http_check",
            "connection": "deploy_api",
            "endpoint": "/health",
            "json_field": "app.version",
            "equals": "1.2.3",
        }
    )
    _check_conn.run(ctx)
    seen = [s for s in deploy_api.seen if s.path == "/health"]
    assert seen
    assert seen[0].headers["Authorization"] == "Basic " + base64.b64encode(b"deployer:s3cr3t-pa55").decode()
    deploy_api.script("/health", default=Reply(200, {"app": {"version": "1.2.2"}}))
    wrong = STEP_ADAPTER.validate_python(
        {**_check_conn.model_dump(by_alias=True), "within_seconds": 0.3, "interval_seconds": 0.1}
    )
    with pytest.raises(StepError, match=r"1\.2\.2"):
        wrong.run(ctx)


def test_check_needs_exactly_one_target() -> None:
    """url and connection together (or neither) are refused when the definition loads."""
    with pytest.raises(ValueError, match="set either connection"):
        STEP_ADAPTER.validate_python({"type": "http_check", "url": "http://127.0.0.1/", "connection": "x"})


def _vector(*values: float) -> dict:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"instance": f"web{i}"}, "value": [1700000000.0, str(v)]} for i, v in enumerate(values)
            ],
        },
    }


def _metrics(url: str, **fields):
    return STEP_ADAPTER.validate_python(
        {
            "type": "metrics_check",
            "url": url + "/api/v1/query",
            "query": 'rate(http_errors_total{version="1.2.3"}[5m])',
            "op": "<",
            "threshold": 0.05,
            "interval_seconds": 0.05,
            "within_seconds": 3,
            **fields,
        }
    )


def test_metrics_check_passes_when_every_series_is_under_threshold(http_server, ctx) -> None:
    """The PromQL query is sent as given; all series under 0.05 pass."""
    http_server.script("/api/v1/query", default=Reply(200, _vector(0.01, 0.02)))
    _metrics(http_server.url).run(ctx)
    assert "query=rate%28http_errors_total%7Bversion%3D%221.2.3%22%7D%5B5m%5D%29" in http_server.seen[0].path


def test_metrics_check_fails_naming_the_bad_series(http_server, ctx) -> None:
    """One series over the threshold fails the check with its labels and value."""
    http_server.script("/api/v1/query", default=Reply(200, _vector(0.01, 0.5)))
    with pytest.raises(StepError, match=r"not < 0.05: \{'instance': 'web1'\}=0.5"):
        _metrics(http_server.url).run(ctx)


def test_metrics_check_empty_and_error_answers(http_server, ctx) -> None:
    """No series fails by default (on_empty: pass accepts it); a query error is a failure with its text."""
    http_server.script("/api/v1/query", default=Reply(200, _vector()))
    with pytest.raises(StepError, match="returned no series"):
        _metrics(http_server.url, within_seconds=0.2).run(ctx)
    _metrics(http_server.url, on_empty="pass").run(ctx)
    http_server.script("/api/v1/query", default=Reply(400, {"status": "error", "error": "parse error"}))
    with pytest.raises(StepError, match=r"HTTP 400.*parse error"):
        _metrics(http_server.url, within_seconds=0.2).run(ctx)


@pytest.mark.faults
def test_a_killed_task_calls_the_deploy_apis_cancel(deploy_api, ctx: StepContext) -> None:
    """Issue 16: the task is killed while the deploy request runs: cancel_endpoint is called with the RELEASE_*
    values, and the stop says what the API answered; a failing cancel says so too, never raising."""
    import threading

    deploy_api.script("/deploy", Reply(202, {"id": 7}, delay=3))
    deploy_api.script("/cancel", Reply(200, {"canceled": 7}), Reply(500, "cannot"))
    step = STEP_ADAPTER.validate_python(
        {"type": "http", "connection": "deploy_api", "endpoint": "/deploy", "cancel_endpoint": "/cancel"}
    )
    worker = threading.Thread(target=step.run, args=(ctx,))
    worker.start()
    time.sleep(0.5)
    said = ctx.stopper.stop()
    assert said == ["POST deploy_api:/deploy: canceled: POST deploy_api:/cancel answered HTTP 200"]
    cancel = next(s for s in deploy_api.seen if s.path == "/cancel")
    assert json.loads(cancel.body)["RELEASE_VERSION"] == "1.2.3"
    worker.join(10)
    deploy_api.script("/deploy", Reply(202, {"id": 8}, delay=3))
    again = threading.Thread(target=step.run, args=(ctx,))
    again.start()
    time.sleep(0.5)
    [failed] = ctx.stopper.stop()
    assert failed.startswith("POST deploy_api:/deploy: cancel FAILED: POST deploy_api:/cancel answered HTTP 500")
    again.join(10)
    with pytest.raises(ValueError, match="cancel_endpoint is called through connection"):
        STEP_ADAPTER.validate_python({"type": "http", "url": "http://127.0.0.1:1/x", "cancel_endpoint": "/c"})
