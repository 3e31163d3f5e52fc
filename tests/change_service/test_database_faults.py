"""The change database unable to write (issue 16, rows 7 and 10): a read-only or locked SQLite file behind the
real service. People and release tasks get a 503 saying which, with Retry-After -- never a bare 500 -- and the
hook's error names the built-in service or connection, the real number of tries and the likely cause."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import requests

from release_mgmt.change_service.app import create_app
from release_mgmt.change_service.callers import basic_auth
from release_mgmt.change_service.store import ChangeStore
from release_mgmt.hooks.servicenow import ServiceNowChangeHook, ServiceNowError
from tests.servers import serve_app

pytestmark = pytest.mark.faults

TABLE = "/api/now/table/change_request"
USERS = {"release-bot": ("bot-pass", "release_task"), "cab": ("cab-pass", "viewer")}


def _change_in_authorize(path: Path) -> dict[str, str]:
    store = ChangeStore(f"sqlite:///{path}")
    change = store.create(
        {"short_description": "x", "type": "normal", "correlation_id": "k", "u_authorizers": "cab"}, "release-bot"
    )
    for state in ("-4", "-3"):
        store.update(change["sys_id"], {"state": state}, "release-bot")
    store.engine.dispose()
    return change


def test_an_approval_on_a_read_only_database_is_a_503_saying_so(tmp_path: Path) -> None:
    change = _change_in_authorize(tmp_path / "changes.db")
    read_only = ChangeStore(f"sqlite:///file:{tmp_path / 'changes.db'}?mode=ro&uri=true")
    with serve_app(create_app(read_only, basic_auth(USERS))) as url:
        answer = requests.post(
            f"{url}/api/release_mgmt/change_request/{change['sys_id']}/approve",
            json={"comment": "fine"},
            auth=("cab", "cab-pass"),
            timeout=10,
        )
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "5"
        assert answer.json()["error"] == {
            "message": "Change database unavailable",
            "detail": "the change database is read-only; nothing was changed, try again shortly",
        }
        assert requests.get(f"{url}{TABLE}/{change['sys_id']}", auth=("cab", "cab-pass"), timeout=10).ok  # reads do


def test_a_locked_database_is_a_503_and_the_hook_names_target_tries_and_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    change = _change_in_authorize(tmp_path / "changes.db")
    store = ChangeStore(f"sqlite:///{tmp_path / 'changes.db'}?timeout=0.5")
    with serve_app(create_app(store, basic_auth(USERS))) as url:
        host, port = url.removeprefix("http://").split(":")
        conn = {"conn_type": "http", "host": host, "port": int(port), "login": "release-bot", "password": "bot-pass"}
        monkeypatch.setenv("AIRFLOW_CONN_SNOW", json.dumps(conn))
        writer = sqlite3.connect(tmp_path / "changes.db", check_same_thread=False)
        writer.execute("BEGIN EXCLUSIVE")  # another writer holds the database
        try:
            hook = ServiceNowChangeHook("snow", timeout=5, retries=2, backoff=0.05)
            with pytest.raises(ServiceNowError) as info:
                hook.add_work_note(change["sys_id"], "deploy of web 1.7.0: succeeded")
        finally:
            writer.rollback()
            writer.close()
        message = str(info.value)
        assert message.startswith(f"PATCH {TABLE}/{change['sys_id']} on connection snow failed after 3 tries: HTTP 503")
        assert "the change database is locked by another writer" in message
        assert message.endswith("likely cause: its database is locked by another writer")
        hook.add_work_note(change["sys_id"], "deploy of web 1.7.0: succeeded")  # the lock gone, it works
