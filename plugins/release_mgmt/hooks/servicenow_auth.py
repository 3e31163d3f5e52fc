"""How the ServiceNow hook logs in, as ``requests`` auth objects (the HTTP provider's ``auth_type`` idiom).

- :class:`ServiceTokenAuth`: the built-in service, called as the release task itself: every request carries a
  fresh service token bound to the task's DAG run.
- :class:`TokenLoginAuth`: a Bearer token from a login call (ServiceNow's OAuth password grant, ``auth: oauth``;
  or Airflow's ``/auth/token`` for the built-in service mounted in Airflow, ``auth: airflow``), refreshed
  before it expires and once more when the server refuses it (401).
- anything else: the HTTP provider's default, HTTP Basic with the connection's login and password.

Login secrets (``client_id``, ``client_secret`` and the other keys below) live in the connection's extra and
never become request headers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import requests
from requests.auth import AuthBase

from release_mgmt.change_service import service_token
from release_mgmt.change_service.service_token import TaskIdentity
from release_mgmt.errors import ServiceNowError, excerpt

#: the connection extra keys this hook reads itself: never sent as headers
OWN_EXTRA = ("auth", "client_id", "client_secret", "token_endpoint", "token_url")


class ServiceTokenAuth(AuthBase):
    """A fresh service token, bound to the calling task, on every request."""

    def __init__(self, identity: TaskIdentity | None) -> None:
        self.identity = identity

    def header(self) -> str:
        if self.identity is None:
            raise ServiceNowError(
                "the built-in change service is called by release tasks only: make the hook with the calling "
                "task's identity (TaskIdentity.from_context(context))"
            )
        return f"Bearer {service_token.make_token(self.identity)}"

    def __call__(self, request: Any) -> Any:
        request.headers["Authorization"] = self.header()
        return request


class TokenLoginAuth(AuthBase):
    """A Bearer token from a login call, cached until shortly before it expires."""

    def __init__(self, conn: Any, base_url: str, timeout: float) -> None:
        self.conn_id = str(conn.conn_id)
        self.login, self.password = str(conn.login or ""), str(conn.password or "")
        self.extra: Mapping[str, Any] = conn.extra_dejson or {}
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.token, self.refresh, self.expires = "", "", 0.0

    def login_request(self, force: bool) -> tuple[str, dict[str, Any]]:
        """(URL, keyword arguments of ``requests.post``) of the next login."""
        if self.extra.get("auth") == "airflow":
            origin = "/".join(self.base_url.split("/")[:3])
            url = str(self.extra.get("token_url") or f"{origin}/auth/token")
            return url, {"json": {"username": self.login, "password": self.password}}
        form = {"client_id": self.extra.get("client_id", ""), "client_secret": self.extra.get("client_secret", "")}
        if self.refresh and not force:
            form |= {"grant_type": "refresh_token", "refresh_token": self.refresh}
        else:
            form |= {"grant_type": "password", "username": self.login, "password": self.password}
        return f"{self.base_url}{self.extra.get('token_endpoint', '/oauth_token.do')}", {"data": form}

    def accept(self, status: int, body: Any, text: str, force: bool) -> bool:
        """Take a login answer; False when a refresh token expired (log in again with the password)."""
        if status in (200, 201) and isinstance(body, dict) and body.get("access_token"):
            self.token, self.refresh = str(body["access_token"]), str(body.get("refresh_token") or "")
            default = 600 if self.extra.get("auth") == "airflow" else 1800
            self.expires = time.monotonic() + float(body.get("expires_in") or default)
            return True
        if self.refresh and not force:
            self.refresh = ""
            return False
        airflow = self.extra.get("auth") == "airflow"
        what = "Airflow refused the login" if airflow else "OAuth login refused"
        check = "login and password" if airflow else "login, password, client_id and client_secret"
        raise ServiceNowError(
            f"{self.conn_id}: {what} (HTTP {status}); check the connection's {check}", status, excerpt(text)
        )

    def expiring(self) -> bool:
        """Whether the token expires within 30 seconds (or was never fetched)."""
        return time.monotonic() >= self.expires - 30

    def current(self, force: bool = False) -> str:
        """The token, logging in (or refreshing) first when it is missing, expiring or ``force``d."""
        if self.token and not force and not self.expiring():
            return self.token
        url, kwargs = self.login_request(force)
        response = requests.post(url, headers={"Accept": "application/json"}, timeout=self.timeout, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not self.accept(response.status_code, body, response.text, force):
            return self.current(force=True)
        return self.token

    def __call__(self, request: Any) -> Any:
        request.headers["Authorization"] = f"Bearer {self.current()}"
        request.register_hook("response", self._again_on_401)
        return request

    def _again_on_401(self, response: Any, **kwargs: Any) -> Any:
        """A refused token (expired early, revoked): log in again and resend once."""
        if response.status_code != 401 or getattr(response.request, "_logged_in_again", False):
            return response
        response.content  # noqa: B018 - read it, so the connection can be reused
        response.close()
        again = response.request.copy()
        again._logged_in_again = True
        again.headers["Authorization"] = f"Bearer {self.current(force=True)}"
        answer = response.connection.send(again, **kwargs)
        answer.history.append(response)
        answer.request = again
        return answer
