"""The built-in change service as Airflow's API server serves it: Airflow's own authentication."""

from __future__ import annotations

import json

import pytest
import requests

from release_mgmt.hooks.servicenow import ServiceNowChangeHook, ServiceNowError
from tests.change_service import matrix

pytestmark = pytest.mark.e2e
TABLE = "/change-service/api/now/table/change_request"


def test_anonymous_requests_are_refused(airflow) -> None:
    """Without an Airflow login the plugin's app answers 401 and creates nothing."""
    assert requests.get(airflow.url + TABLE, timeout=10).status_code == 401
    assert requests.post(airflow.url + TABLE, json={"short_description": "x"}, timeout=10).status_code == 401
    bogus = requests.get(airflow.url + TABLE, headers={"Authorization": "Bearer not-a-token"}, timeout=10)
    assert bogus.status_code in (401, 403)


def test_hook_logged_in_as_a_person_reads_but_cannot_open_changes(airflow, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hook (auth: airflow) logs in as bob: it finds the change a release task opened, and opening or moving
    one itself is refused with 403 (humans read; only release tasks write)."""
    monkeypatch.setenv("RELEASE_MGMT_SERVICE_SECRET", airflow.service_secret)
    service = matrix.Service(f"{airflow.url}/change-service", lambda role: matrix.task_headers())
    # a correlation id of its own: other tests of the session's Airflow open many changes under the matrix's
    opened = matrix.change_in_authorize(service, correlation_id="release_mgmt:matrix:prod:hook-reader")
    conn = {
        "conn_type": "http",
        "host": f"{airflow.url}/change-service",
        "login": "bob",
        "password": airflow.passwords["bob"],
        "extra": {"auth": "airflow"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_BUILTIN_CHANGES", json.dumps(conn))
    hook = ServiceNowChangeHook("builtin_changes", timeout=10, retries=0)
    found = hook.find(opened["correlation_id"])
    assert found is not None
    assert (found["sys_id"], found["sys_created_by"]) == (opened["sys_id"], "release_mgmt[service]")
    with pytest.raises(ServiceNowError) as created:
        hook.ensure("e2e:run:prod", {"short_description": "e2e", "type": "standard"})
    assert created.value.status == 403
    with pytest.raises(ServiceNowError) as moved:
        hook.update(opened["sys_id"], {"state": -1})
    assert moved.value.status == 403
    assert hook.get(opened["sys_id"])["state"] == "-3"
