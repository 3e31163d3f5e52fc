"""The built-in change service over real HTTP (uvicorn on loopback), on a real SQLite database."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from release_mgmt.change_service.app import create_app
from release_mgmt.change_service.callers import basic_auth
from release_mgmt.change_service.store import ChangeStore
from tests.servers import serve_app

TABLE = "/api/now/table/change_request"
AUTH = ("release-bot", "bot-pass")


@pytest.fixture
def service(tmp_path: Path):
    """The service with two users, on a SQLite file; yields (base URL, store)."""
    store = ChangeStore(f"sqlite:///{tmp_path / 'changes.db'}")
    users = {"release-bot": ("bot-pass", "release_task"), "cab": ("cab-pass", "viewer")}
    app = create_app(store, basic_auth(users))
    with serve_app(app) as url:
        yield url, store


def _create(url: str, **fields) -> dict:
    body = {
        "short_description": "Release shop 1.3.0 to prod",
        "type": "normal",
        "correlation_id": "shop:run1:prod",
        "u_authorizers": "cab",
        **fields,
    }
    response = requests.post(url + TABLE, json=body, auth=AUTH, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["result"]


def test_create_and_look_up_by_correlation_id(service) -> None:
    """A created change is New, numbered, stored as strings, and found by correlation_id."""
    url, _ = service
    change = _create(url)
    assert (change["state"], change["number"], change["approval"]) == ("-5", "CHG0000001", "not requested")
    assert change["sys_created_by"] == "release-bot"  # the integration user, as ServiceNow records it
    found = requests.get(
        url + TABLE,
        params={"sysparm_query": "correlation_id=shop:run1:prod", "sysparm_fields": "sys_id,number,state"},
        auth=AUTH,
        timeout=10,
    )
    assert found.json() == {"result": [{"sys_id": change["sys_id"], "number": "CHG0000001", "state": "-5"}]}
    none = requests.get(url + TABLE, params={"sysparm_query": "correlation_id=other"}, auth=AUTH, timeout=10)
    assert none.json() == {"result": []}


def test_normal_change_lifecycle_with_authorization(service) -> None:
    """New -> Assess -> Authorize, approved by the CAB -> Scheduled -> Implement -> Review -> Closed."""
    url, _ = service
    sys_id = _create(url)["sys_id"]
    record = f"{url}{TABLE}/{sys_id}"
    for state in ("-4", "-3"):
        assert requests.patch(record, json={"state": state}, auth=AUTH, timeout=10).status_code == 200
    assert requests.get(record, auth=AUTH, timeout=10).json()["result"]["approval"] == "requested"
    decided = requests.post(
        f"{url}/api/release_mgmt/change_request/{sys_id}/approve",
        json={"comment": "ok"},
        auth=("cab", "cab-pass"),
        timeout=10,
    ).json()["result"]
    assert (decided["state"], decided["approval"]) == ("-2", "approved")
    for state in ("-1", "0"):
        assert (
            requests.patch(
                record, json={"state": state, "work_notes": f"now {state}"}, auth=AUTH, timeout=10
            ).status_code
            == 200
        )
    closed = requests.patch(
        record, json={"state": "3", "close_code": "successful", "close_notes": "all green"}, auth=AUTH, timeout=10
    ).json()["result"]
    assert (closed["state"], closed["close_code"]) == ("3", "successful")
    notes = closed["work_notes"]
    assert notes.index("now 0") < notes.index("now -1") < notes.index("Change approved by cab: ok")  # newest first
    approvals = requests.get(
        url + "/api/now/table/sysapproval_approver",
        params={"sysparm_query": f"sysapproval={sys_id}", "sysparm_exclude_reference_link": "true"},
        auth=AUTH,
        timeout=10,
    ).json()["result"]
    assert [(a["approver"], a["state"], a["comments"]) for a in approvals] == [("cab", "approved", "ok")]


def test_state_model_is_enforced(service) -> None:
    """Skipping authorization is refused with ServiceNow's error shape; closing needs a close code."""
    url, _ = service
    sys_id = _create(url)["sys_id"]
    skipped = requests.patch(f"{url}{TABLE}/{sys_id}", json={"state": "-1"}, auth=AUTH, timeout=10)
    assert skipped.status_code == 403
    assert skipped.json() == {
        "status": "failure",
        "error": {
            "message": "Operation against file 'change_request' was aborted by Business Rule 'State model'",
            "detail": "CHG0000001 (normal) cannot move from New to Implement",
        },
    }
    standard = _create(url, type="standard", correlation_id="std")
    assert standard["approval"] == "approved"
    for state in ("-1", "0"):
        requests.patch(f"{url}{TABLE}/{standard['sys_id']}", json={"state": state}, auth=AUTH, timeout=10)
    no_code = requests.patch(f"{url}{TABLE}/{standard['sys_id']}", json={"state": "3"}, auth=AUTH, timeout=10)
    assert (no_code.status_code, no_code.json()["error"]["message"]) == (403, "Close code required")


def test_cancel_and_reject(service) -> None:
    """A change can be canceled before closing; a rejected authorization cancels it."""
    url, _ = service
    first = _create(url)["sys_id"]
    canceled = requests.patch(f"{url}{TABLE}/{first}", json={"state": "4"}, auth=AUTH, timeout=10).json()["result"]
    assert canceled["state"] == "4"
    second = _create(url, correlation_id="c2", type="emergency")["sys_id"]
    requests.patch(f"{url}{TABLE}/{second}", json={"state": "-3"}, auth=AUTH, timeout=10)
    rejected = requests.post(
        f"{url}/api/release_mgmt/change_request/{second}/reject",
        json={"comment": "no"},
        auth=("cab", "cab-pass"),
        timeout=10,
    ).json()["result"]
    assert (rejected["state"], rejected["approval"]) == ("4", "rejected")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("GET", TABLE + "/nope", None, 404, "No Record found"),
        ("POST", TABLE, {"close_code": "great"}, 400, "Invalid close_code"),
        ("GET", TABLE + "?sysparm_query=stateINNew", None, 400, "Invalid query"),
        ("GET", TABLE + "?sysparm_query=colour=blue", None, 400, "Invalid query"),
        ("GET", TABLE + "?sysparm_query=stateSOUNDSLIKE-1", None, 400, "Invalid query"),
        ("GET", "/api/now/table/incident", None, 400, "Invalid table incident"),
        ("DELETE", "/api/now/table/sys_journal_field/x", None, 405, "Method not Supported"),
    ],
)
def test_bad_requests(service, method, path, body, status, message) -> None:
    """Errors come as {"error": {"message", "detail"}, "status": "failure"} with the right status."""
    url, _ = service
    response = requests.request(method, url + path, json=body, auth=AUTH, timeout=10)
    assert response.status_code == status
    assert response.json()["error"]["message"] == message
    assert response.json()["status"] == "failure"


def test_anonymous_and_wrong_password_are_refused(service) -> None:
    """No credentials or a wrong password: 401, and nothing is created."""
    url, store = service
    assert requests.post(url + TABLE, json={"short_description": "x"}, timeout=10).status_code == 401
    assert requests.get(url + TABLE, auth=("release-bot", "wrong"), timeout=10).status_code == 401
    assert store.query([], 10) == []
