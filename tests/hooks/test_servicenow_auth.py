"""How the ServiceNow hook logs in, seen from the instance's side: the OAuth client's secret goes only to the
token endpoint, in the form body, never as a header of any call (sync or async); a refused token is renewed."""

from __future__ import annotations

import asyncio

import pytest

from release_mgmt.hooks.servicenow import ServiceNowChangeHook
from release_mgmt.hooks.servicenow_async import get_record
from tests.servers import Reply, ScriptedHTTP

RECORD = {"result": {"sys_id": "c1", "number": "CHG0000001", "state": "-3"}}
TOKEN = {"access_token": "tok-1", "refresh_token": "ref-1", "expires_in": 1800, "token_type": "Bearer"}


@pytest.fixture
def instance(monkeypatch: pytest.MonkeyPatch):
    with ScriptedHTTP() as server:
        extra = {"auth": "oauth", "client_id": "cid", "client_secret": "csecret-XYZ", "token_endpoint": "/oauth"}
        monkeypatch.setenv("AIRFLOW_CONN_SNOW_OAUTH", server.connection(**extra))
        server.script("/oauth", default=Reply(200, TOKEN))
        yield server


def _headers_text(server: ScriptedHTTP) -> str:
    return " ".join(f"{k}: {v}" for seen in server.seen for k, v in seen.headers.items())


def test_client_secret_never_rides_in_a_header(instance: ScriptedHTTP) -> None:
    """The provider turns unknown connection extras into headers; the hook keeps its login settings out."""
    instance.script("/api/now/table/change_request/c1", default=Reply(200, RECORD))
    hook = ServiceNowChangeHook("snow_oauth", timeout=5, backoff=0.01)
    assert hook.get("c1")["number"] == "CHG0000001"
    assert asyncio.run(get_record(hook, "c1"))["number"] == "CHG0000001"
    assert [s.path.split("?")[0] for s in instance.seen].count("/api/now/table/change_request/c1") == 2
    assert "csecret-XYZ" not in _headers_text(instance)
    assert "client_secret" not in _headers_text(instance).lower()
    token_calls = [s for s in instance.seen if s.path == "/oauth"]
    assert token_calls
    assert all(b"client_secret=csecret-XYZ" in s.body for s in token_calls)
    assert all(s.headers.get("Authorization") == "Bearer tok-1" for s in instance.seen if s.path != "/oauth")


def test_a_refused_token_is_renewed_once(instance: ScriptedHTTP) -> None:
    """A 401 on a call with a cached token logs in again and resends once; a second 401 fails, saying what to
    check, without the password or the secret."""
    instance.script("/api/now/table/change_request/c1", Reply(401, {"error": {}}), default=Reply(200, RECORD))
    hook = ServiceNowChangeHook("snow_oauth", timeout=5, backoff=0.01)
    assert hook.get("c1")["sys_id"] == "c1"
    assert [s.path.split("?")[0] for s in instance.seen] == [
        "/oauth",
        "/api/now/table/change_request/c1",
        "/oauth",
        "/api/now/table/change_request/c1",
    ]
    instance.script("/api/now/table/change_request/c2", default=Reply(401, {"error": {}}))
    with pytest.raises(Exception, match="HTTP 401") as info:
        hook.get("c2")
    assert "csecret-XYZ" not in str(info.value)
    assert "s3cr3t-pa55" not in str(info.value)


def test_async_calls_reuse_one_login(instance: ScriptedHTTP) -> None:
    """A trigger polling through one hook logs in once, not on every poll; a refused token logs in again."""
    instance.script("/api/now/table/change_request/c1", default=Reply(200, RECORD))
    hook = ServiceNowChangeHook("snow_oauth", timeout=5, backoff=0.01)

    async def polls() -> None:
        for _ in range(3):
            await get_record(hook, "c1")

    asyncio.run(polls())
    assert [s.path.split("?")[0] for s in instance.seen].count("/oauth") == 1
    instance.script("/api/now/table/change_request/c1", Reply(401, {"error": {}}), default=Reply(200, RECORD))
    assert asyncio.run(get_record(hook, "c1"))["sys_id"] == "c1"
    assert [s.path.split("?")[0] for s in instance.seen].count("/oauth") == 2
