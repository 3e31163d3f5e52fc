"""The built-in change service as Airflow's API server serves it: Airflow's own authentication."""

from __future__ import annotations

import json

import pytest
import requests

from release_mgmt.hooks.servicenow import ServiceNowChangeHook

pytestmark = pytest.mark.e2e
TABLE = "/change-service/api/now/table/change_request"


def test_anonymous_requests_are_refused(airflow) -> None:
    """Without an Airflow login the plugin's app answers 401 and creates nothing."""
    assert requests.get(airflow.url + TABLE, timeout=10).status_code == 401
    assert requests.post(airflow.url + TABLE, json={"short_description": "x"}, timeout=10).status_code == 401
    bogus = requests.get(airflow.url + TABLE, headers={"Authorization": "Bearer not-a-token"}, timeout=10)
    assert bogus.status_code in (401, 403)


def test_hook_logs_in_to_airflow_and_manages_a_change(airflow, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hook (auth: airflow) gets a token for the user and creates, finds and updates a change as them."""
    conn = {
        "conn_type": "http",
        "host": f"{airflow.url}/change-service",
        "login": "bob",
        "password": airflow.passwords["bob"],
        "extra": {"auth": "airflow"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_BUILTIN_CHANGES", json.dumps(conn))
    hook = ServiceNowChangeHook("builtin_changes", timeout=10)
    change, created = hook.ensure("e2e:run:prod", {"short_description": "e2e", "type": "standard"})
    assert created
    assert change["sys_created_by"] == "bob"
    assert hook.ensure("e2e:run:prod", {"short_description": "e2e"})[0]["sys_id"] == change["sys_id"]
    moved = hook.update(change["sys_id"], {"state": -1, "work_notes": "deploying"})
    assert moved["state"] == "-1"
    token = airflow.token("alice")
    listed = requests.get(
        airflow.url + TABLE,
        params={"sysparm_query": "correlation_id=e2e:run:prod"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()["result"]
    assert [c["number"] for c in listed] == [change["number"]]
