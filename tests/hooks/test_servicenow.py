"""The ServiceNow hook against the built-in change service over real HTTP, with faults injected between them."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from release_mgmt.change_service.app import create_app
from release_mgmt.change_service.callers import basic_auth
from release_mgmt.change_service.store import ChangeStore
from release_mgmt.hooks.servicenow import ServiceNowChangeHook, ServiceNowError
from release_mgmt.rules.change import ChangeState
from tests.servers import FaultProxy, serve_app

PASSWORD = "bot-pa55word"


@pytest.fixture
def snow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The change service behind a fault proxy; Airflow connection `snow` points at the proxy."""
    store = ChangeStore(f"sqlite:///{tmp_path / 'changes.db'}")
    with serve_app(create_app(store, basic_auth({"release-bot": (PASSWORD, "release_task")}))) as url:
        port = int(url.rsplit(":", 1)[1])
        with FaultProxy(port, delay=2.5) as proxy:
            conn = {
                "conn_type": "http",
                "host": "127.0.0.1",
                "port": proxy.port,
                "schema": "http",
                "login": "release-bot",
                "password": PASSWORD,
            }
            monkeypatch.setenv("AIRFLOW_CONN_SNOW", json.dumps(conn))
            yield proxy, store


def _hook(**kw) -> ServiceNowChangeHook:
    return ServiceNowChangeHook("snow", timeout=1.5, backoff=0.05, **kw)


FIELDS = {
    "short_description": "Release shop to prod",
    "type": "normal",
    "description": "api 1.3.0",
    "u_authorizers": "cab",
}


def test_lifecycle_through_the_hook(snow) -> None:
    """ensure creates once and then finds; state moves, work notes append, close sets the outcome."""
    _, store = snow
    hook = _hook()
    change, created = hook.ensure("shop:run1:prod", FIELDS)
    again, created_again = hook.ensure("shop:run1:prod", FIELDS)
    assert (created, created_again, again["sys_id"]) == (True, False, change["sys_id"])
    for state in (-4, -3):
        hook.update(change["sys_id"], {"state": state})
    store.decide(change["sys_id"], True, "cab", "go")
    assert ChangeState.of(hook.get(change["sys_id"])) is ChangeState.SCHEDULED
    hook.update(change["sys_id"], {"state": -1, "work_start": "2026-11-27 10:00:00"})
    hook.add_work_note(change["sys_id"], "deployed api 1.3.0")
    hook.update(change["sys_id"], {"state": 0})
    closed = hook.update(change["sys_id"], {"state": 3, "close_code": "successful", "close_notes": "ok"})
    assert (closed["state"], closed["close_code"]) == ("3", "successful")
    assert "deployed api 1.3.0" in closed["work_notes"]


def test_429_is_retried_after_retry_after(snow) -> None:
    """A 429 with Retry-After: 1 is retried after at least a second."""
    proxy, _ = snow
    proxy.plan = ["429"]
    started = time.monotonic()
    assert _hook().find("nothing") is None
    assert time.monotonic() - started >= 1.0
    assert [fault for _, _, fault in proxy.seen] == ["429", "pass"]


def test_5xx_storm_fails_after_bounded_retries(snow) -> None:
    """Only 500s: 1 + retries attempts, then an error with the status and body excerpt."""
    proxy, _ = snow
    proxy.plan = ["500"] * 10
    with pytest.raises(ServiceNowError, match=r"failed after 3 tries: HTTP 500: .*injected 500"):
        _hook(retries=2).find("x")
    assert len(proxy.seen) == 3


@pytest.mark.parametrize("fault", ["drop", "slow"])
def test_lost_answer_to_a_create_never_duplicates(snow, fault) -> None:
    """The service commits the create but the answer is lost (dropped, or past the timeout): one change."""
    proxy, store = snow
    proxy.plan = ["pass", fault]  # the look-up passes, the POST's answer is lost
    change, _ = _hook().ensure("shop:run7:prod", FIELDS)
    assert [r["sys_id"] for r in store.query([("correlation_id", "=", "shop:run7:prod")], 10)] == [change["sys_id"]]
    assert [m for m, _, _ in proxy.seen].count("POST") == 1


def test_wrong_password_fails_at_once_without_leaking_it(snow, monkeypatch: pytest.MonkeyPatch) -> None:
    """401 is not retried; the message says what to fix and never contains the password."""
    proxy, _ = snow
    conn = json.loads(os.environ["AIRFLOW_CONN_SNOW"]) | {"password": "wrong-secret"}
    monkeypatch.setenv("AIRFLOW_CONN_SNOW", json.dumps(conn))
    with pytest.raises(ServiceNowError, match="HTTP 401: the connection's credentials were refused") as info:
        _hook().find("x")
    assert len(proxy.seen) == 1
    assert "wrong-secret" not in str(info.value) + info.value.excerpt


def test_missing_connection() -> None:
    """An unknown connection id says what to add."""
    with pytest.raises(ServiceNowError, match="nope: no such Airflow connection"):
        ServiceNowChangeHook("nope").find("x")


def test_malformed_answer_fails_with_status_and_excerpt(http_server, monkeypatch: pytest.MonkeyPatch) -> None:
    """An instance answering HTML (a login page, a proxy error) fails at once with the status and its start."""
    from tests.servers import Reply

    http_server.script("/api/now/table/change_request", default=Reply(200, "<html><body>Please log in</body></html>"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_ODD",
        json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": http_server.port, "login": "u", "password": "p"}),
    )
    with pytest.raises(ServiceNowError, match=r"malformed answer \(HTTP 200, not a Table API result\): <html><body>"):
        ServiceNowChangeHook("odd", backoff=0.01).find("x")
    assert len(http_server.seen) == 1


@pytest.mark.faults
def test_with_a_deadline_an_outage_is_ridden_out_not_counted(snow) -> None:
    """Issue 16: a change task's call retries to its own deadline, not a fixed count: seven 500s in a row (more
    than the default five tries) are ridden out; past the deadline it fails naming the real number of tries."""
    proxy, _ = snow
    proxy.plan = ["500"] * 7
    assert _hook(deadline=30, max_wait=0.1).find("x") is None
    assert [fault for _, _, fault in proxy.seen][-1] == "pass"
    proxy.plan = ["500"] * 1000
    started = time.monotonic()
    with pytest.raises(ServiceNowError, match=r"on connection snow failed after (\d+) tries: HTTP 500") as info:
        _hook(deadline=1.5, max_wait=0.1).find("x")
    assert 1.5 <= time.monotonic() - started < 6
    import re

    tries = re.search(r"failed after (\d+) tries", str(info.value))
    assert tries is not None
    assert int(tries.group(1)) > 5


def test_the_hook_calls_only_what_a_servicenow_instance_serves(snow) -> None:
    """Issue 18: pointing the hook at a real instance is a connection change. Along a whole lifecycle it calls only
    the Table API's documented paths and parameters, and reads approvers by name although ServiceNow's own value is
    a reference (a sys_user sys_id)."""
    proxy, store = snow
    hook = _hook()
    change, _ = hook.ensure("shop:run2:prod", FIELDS)
    for state in (-4, -3):
        hook.update(change["sys_id"], {"state": state})
    store.decide(change["sys_id"], True, "cab", "go")
    hook.add_work_note(change["sys_id"], "deployed")
    assert hook.get(change["sys_id"])["assignment_group"] == ""  # a plain value, never a {link, value} object
    assert [(a["approver"], a["state"]) for a in hook.approvals(change["sys_id"])] == [("cab", "approved")]
    paths = {re.sub(r"/[0-9a-f]{32}$", "", path.split("?")[0]) for _, path, _ in proxy.seen}
    assert paths == {"/api/now/table/change_request", "/api/now/table/sysapproval_approver"}
    params = {p.split("=")[0] for _, path, _ in proxy.seen if "?" in path for p in path.split("?")[1].split("&")}
    assert params <= {"sysparm_query", "sysparm_limit", "sysparm_display_value", "sysparm_exclude_reference_link"}


def test_approvers_from_a_servicenow_instance_are_read_by_name(http_server, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real instance answers approval records with sysparm_display_value=all as value/display pairs: the
    approver's value is a sys_user sys_id, its display value the person's name, which is what the evidence shows."""
    from tests.servers import Reply

    user = "6816f79cc0a8016401c5a33be04be441"
    row = {
        "approver": {"display_value": "Carol Cab", "value": user},
        "state": {"display_value": "Approved", "value": "approved"},
        "comments": {"display_value": "looks fine", "value": "looks fine"},
        "sys_updated_on": {"display_value": "2026-11-28 11:00:00", "value": "2026-11-28 10:00:00"},
    }
    http_server.script("/api/now/table/sysapproval_approver", default=Reply(200, {"result": [row]}))
    monkeypatch.setenv(
        "AIRFLOW_CONN_REAL",
        json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": http_server.port, "login": "u", "password": "p"}),
    )
    [answer] = ServiceNowChangeHook("real", backoff=0.01).approvals("c83c5e5347c12200e0ef563dbb9a7190")
    assert answer == {
        "approver": "Carol Cab",
        "state": "approved",
        "comments": "looks fine",
        "sys_updated_on": "2026-11-28 10:00:00",
    }
    assert "sysparm_display_value=all" in http_server.seen[0].path
