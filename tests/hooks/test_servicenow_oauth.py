"""OAuth password grant with token refresh, against a local server of ServiceNow's /oauth_token.do."""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

import pytest
from fastapi import FastAPI, Form, HTTPException, Request

from release_mgmt.change_service.app import create_app
from release_mgmt.change_service.permissions import RELEASE_TASK, Caller
from release_mgmt.change_service.store import ChangeStore
from release_mgmt.hooks.servicenow import ServiceNowChangeHook, ServiceNowError
from tests.servers import serve_app


class TokenIssuer:
    """/oauth_token.do (password and refresh_token grants) and Bearer checks; tokens live ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.access: dict[str, tuple[str, float]] = {}
        self.refresh: dict[str, str] = {}
        self.grants: list[str] = []

    def authenticate(self, request: Request) -> Caller:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        user, expires = self.access.get(token, ("", 0.0))
        if not user or expires < time.monotonic():
            raise HTTPException(401, detail="User Not Authenticated")
        return Caller(user, RELEASE_TASK)

    def issue(self, user: str) -> dict[str, object]:
        access, refresh = secrets.token_hex(8), secrets.token_hex(8)
        self.access[access] = (user, time.monotonic() + self.ttl)
        self.refresh[refresh] = user
        return {"access_token": access, "refresh_token": refresh, "expires_in": self.ttl, "token_type": "Bearer"}


@pytest.fixture
def oauth_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    issuer = TokenIssuer(ttl=1.0)
    service = create_app(ChangeStore(f"sqlite:///{tmp_path / 'changes.db'}"), issuer.authenticate)
    app = FastAPI()  # the instance: its token endpoint beside the Table API (which refuses routes it has no row for)

    @app.post("/oauth_token.do")
    def token(
        grant_type: str = Form(...),
        client_id: str = Form(""),
        client_secret: str = Form(""),
        username: str = Form(""),
        password: str = Form(""),
        refresh_token: str = Form(""),
    ) -> object:
        issuer.grants.append(grant_type)
        if (client_id, client_secret) != ("cid", "csecret"):
            raise HTTPException(401, detail="invalid client")
        if grant_type == "password" and (username, password) == ("release-bot", "pw"):
            return issuer.issue(username)
        if grant_type == "refresh_token" and refresh_token in issuer.refresh:
            return issuer.issue(issuer.refresh.pop(refresh_token))
        raise HTTPException(401, detail="invalid grant")

    app.mount("/", service)
    with serve_app(app) as url:
        host, port = url.removeprefix("http://").split(":")
        conn = {
            "conn_type": "http",
            "host": host,
            "port": int(port),
            "login": "release-bot",
            "password": "pw",
            "extra": {"auth": "oauth", "client_id": "cid", "client_secret": "csecret"},
        }
        monkeypatch.setenv("AIRFLOW_CONN_SNOW_OAUTH", json.dumps(conn))
        yield issuer


def test_password_grant_then_refresh(oauth_service) -> None:
    """The hook logs in with the password grant, and refreshes once the token has expired."""
    hook = ServiceNowChangeHook("snow_oauth", timeout=5, backoff=0.05)
    change, _ = hook.ensure("oauth:run:prod", {"short_description": "x", "type": "standard"})
    assert change["sys_created_by"] == "release-bot"
    time.sleep(1.2)  # the 1-second token has expired
    assert hook.get(change["sys_id"])["number"] == change["number"]
    assert oauth_service.grants[0] == "password"
    assert "refresh_token" in oauth_service.grants


def test_refused_client_says_what_to_check(oauth_service, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong client secret fails the login at once, naming what to check and not the secret."""
    base = json.loads(os.environ["AIRFLOW_CONN_SNOW_OAUTH"])
    extra = {"auth": "oauth", "client_id": "cid", "client_secret": "wrong-csecret"}
    monkeypatch.setenv("AIRFLOW_CONN_SNOW_OAUTH", json.dumps(base | {"extra": extra}))
    with pytest.raises(ServiceNowError, match=r"OAuth login refused .* check the connection's login") as info:
        ServiceNowChangeHook("snow_oauth", timeout=5).find("x")
    assert "wrong-csecret" not in str(info.value) + info.value.excerpt
