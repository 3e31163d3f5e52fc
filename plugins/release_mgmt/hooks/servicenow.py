"""A ServiceNow client for ``change_request`` on Airflow's HTTP provider (also speaks to the built-in service).

The connection (an HTTP connection) holds the instance URL in ``host`` (and ``schema``/``port``),
the user in ``login``/``password``, and in ``extra`` optionally ``{"auth": "oauth", "client_id": ...,
"client_secret": ..., "token_endpoint": "/oauth_token.do"}`` for the OAuth password grant (tokens
are refreshed when they expire or are refused). Every call has a timeout; 429 (honouring
Retry-After), 5xx and dropped connections are retried with backoff; 401, 403 and 404 fail at once
saying what to fix. Creating a change is idempotent on ``correlation_id``: it is looked up before
every attempt, so a retry after a lost answer never creates a second change. Every text sent
(descriptions, work notes, close notes) passes Airflow's secrets masker first (masking.py).

The built-in service is called as the release task itself: each call carries a fresh service token
bound to the calling task's DAG run (``identity``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from airflow.providers.http.hooks.http import HttpHook

from release_mgmt.change_service import service_token
from release_mgmt.change_service.service_token import TaskIdentity
from release_mgmt.errors import ReleaseMgmtError
from release_mgmt.masking import redact_fields

TABLE = "/api/now/table/change_request"
APPROVALS = "/api/now/table/sysapproval_approver"
DEFAULT_CONN_ID = "servicenow_default"
#: the name the built-in service's calls go by in messages (never looked up as a connection)
BUILTIN_CONN_ID = "release_mgmt_builtin_service"
RETRYABLE = frozenset({429, 500, 502, 503, 504})
STATES = {
    "new": -5,
    "assess": -4,
    "authorize": -3,
    "scheduled": -2,
    "implement": -1,
    "review": 0,
    "closed": 3,
    "canceled": 4,
}


class ServiceNowError(ReleaseMgmtError):
    """A call that failed: the HTTP status (0 when no answer came) and a short excerpt of the answer."""

    def __init__(self, message: str, status: int = 0, excerpt: str = "") -> None:
        self.status = status
        self.excerpt = excerpt
        super().__init__(message)


def _excerpt(text: str, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


class ServiceNowChangeHook:
    """Table API calls for change requests, as the user of Airflow connection ``conn_id``."""

    def __init__(
        self,
        conn_id: str,
        *,
        timeout: float = 30,
        retries: int = 4,
        backoff: float = 1.0,
        max_wait: float = 60,
        sleep: Callable[[float], None] = time.sleep,
        identity: TaskIdentity | None = None,
    ) -> None:
        self.conn_id = conn_id
        self.identity = identity
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.sleep = sleep
        self._token = ""
        self._token_expires = 0.0
        self._refresh = ""
        self._builtin: bool | None = None

    @classmethod
    def builtin_service(cls, **kwargs: Any) -> ServiceNowChangeHook:
        """A client of the built-in service inside Airflow, whatever ``servicenow_default`` points at
        (environment locks always live there)."""
        hook = cls(BUILTIN_CONN_ID, **kwargs)
        hook._builtin = True
        return hook

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """One call with the hook's retries; the answer's ``result``."""
        return self._send(method, path, body=body)

    # -- plumbing -----------------------------------------------------------------------------------------

    def _connection(self) -> Any:
        if self.builtin:
            from airflow.sdk import Connection

            return Connection(conn_id=self.conn_id, conn_type="http", host=service_token.base_url())
        return HttpHook.get_connection(self.conn_id)

    @property
    def builtin(self) -> bool:
        """True when ``servicenow_default`` is not configured: the built-in service inside Airflow is used."""
        if self._builtin is None:
            self._builtin = False
            if self.conn_id == DEFAULT_CONN_ID:
                from airflow.sdk.exceptions import AirflowNotFoundException

                try:
                    HttpHook.get_connection(self.conn_id)
                except AirflowNotFoundException:
                    self._builtin = True
        return self._builtin

    def _http(self, method: str, **kwargs: Any) -> HttpHook:
        if not self.builtin:
            return HttpHook(method=method, http_conn_id=self.conn_id, **kwargs)
        builtin = _BuiltinHttpHook(method=method, http_conn_id=self.conn_id, **kwargs)
        builtin.connection = self._connection()
        return builtin

    def _auth_headers(self) -> dict[str, str]:
        if self.builtin:
            return {"Authorization": f"Bearer {service_token.make_token(self._task_identity())}"}
        if self._oauth() is not None:
            return {"Authorization": f"Bearer {self._access_token()}"}
        return {}

    def _task_identity(self) -> TaskIdentity:
        """Who calls the built-in service: the release task the hook was made for."""
        if self.identity is None:
            raise ServiceNowError(
                "the built-in change service is called by release tasks only: make the hook with the calling "
                "task's identity (TaskIdentity.from_context(context))"
            )
        return self.identity

    def _oauth(self) -> dict[str, Any] | None:
        """The token settings when the connection logs in for a token (``oauth``, or ``airflow`` for the
        built-in service inside Airflow); None for basic auth."""
        extra = self._connection().extra_dejson or {}
        return extra if extra.get("auth") in ("oauth", "airflow") else None

    def _headers(self) -> dict[str, str]:
        return {"Accept": "application/json", "Content-Type": "application/json", **self._auth_headers()}

    def _access_token(self, force: bool = False) -> str:
        if self._token and not force and time.monotonic() < self._token_expires - 30:
            return self._token
        conn, extra = self._connection(), self._oauth() or {}
        if extra.get("auth") == "airflow":
            return self._airflow_token(conn, extra)
        form = {"client_id": extra.get("client_id", ""), "client_secret": extra.get("client_secret", "")}
        if self._refresh and not force:
            form |= {"grant_type": "refresh_token", "refresh_token": self._refresh}
        else:
            form |= {"grant_type": "password", "username": conn.login or "", "password": conn.password or ""}
        hook = HttpHook(method="POST", http_conn_id=self.conn_id, auth_type=_NoAuth)
        response = hook.run(
            extra.get("token_endpoint", "/oauth_token.do"),
            data=form,
            headers={"Accept": "application/json"},
            extra_options={"timeout": self.timeout, "check_response": False},
        )
        if response.status_code != 200:
            if self._refresh and not force:  # the refresh token expired: log in again
                self._refresh = ""
                return self._access_token(force=True)
            raise ServiceNowError(
                f"{self.conn_id}: OAuth login refused (HTTP {response.status_code}); check the "
                "connection's login, password, client_id and client_secret",
                response.status_code,
                _excerpt(response.text),
            )
        body = response.json()
        self._token, self._refresh = str(body["access_token"]), str(body.get("refresh_token") or "")
        self._token_expires = time.monotonic() + float(body.get("expires_in") or 1800)
        return self._token

    def _airflow_token(self, conn: Any, extra: Mapping[str, Any]) -> str:
        """A token from Airflow's /auth/token (the built-in service mounted in Airflow's API server)."""
        import requests

        base = HttpHook(http_conn_id=self.conn_id).url_from_endpoint("")
        origin = "/".join(base.split("/")[:3])
        url = str(extra.get("token_url") or f"{origin}/auth/token")
        response = requests.post(
            url, json={"username": conn.login or "", "password": conn.password or ""}, timeout=self.timeout
        )
        if response.status_code not in (200, 201):
            raise ServiceNowError(
                f"{self.conn_id}: Airflow refused the login (HTTP {response.status_code}); check "
                "the connection's login and password",
                response.status_code,
                _excerpt(response.text),
            )
        self._token = str(response.json()["access_token"])
        self._token_expires = time.monotonic() + 600
        return self._token

    def _send(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Mapping[str, Any] | None = None
    ) -> Any:
        """One call with bounded retries; the decoded ``result``."""
        last = ""
        for attempt in range(self.retries + 1):
            wait = min(self.backoff * 2**attempt, self.max_wait)
            try:
                response = self._once(method, path, params, body)
            except ServiceNowError:
                raise
            except Exception as exc:
                if "AirflowNotFoundException" in type(exc).__name__:
                    raise ServiceNowError(
                        f"{self.conn_id}: no such Airflow connection; add an HTTP connection "
                        "with the instance URL, login and password"
                    ) from exc
                last = f"{type(exc).__name__}: {_excerpt(str(exc), 200)}"
            else:
                if response.status_code < 300:
                    return _result(method, path, self.conn_id, response)
                last = f"HTTP {response.status_code}: {_excerpt(response.text)}"
                self._final_errors(method, path, response)
                if response.status_code == 429:
                    wait = min(_retry_after(response, wait), self.max_wait)
            if attempt < self.retries:
                self.sleep(wait)
        raise ServiceNowError(
            f"{method} {path} on {self.conn_id} failed after {self.retries + 1} attempts: {last}", excerpt=last
        )

    def _once(self, method: str, path: str, params: Mapping[str, Any] | None, body: Mapping[str, Any] | None) -> Any:
        token_auth = self.builtin or self._oauth() is not None
        hook = self._http(method, auth_type=_NoAuth if token_auth else None)
        options = {"timeout": self.timeout, "check_response": False}
        kwargs: dict[str, Any] = {"json": dict(body)} if body is not None else {}
        response = hook.run(
            path, data=dict(params) if params else None, headers=self._headers(), extra_options=options, **kwargs
        )
        if response.status_code == 401 and self._oauth() is not None and not self.builtin:  # expired: fresh token
            self._access_token(force=True)
            response = hook.run(
                path, data=dict(params) if params else None, headers=self._headers(), extra_options=options, **kwargs
            )
        return response

    def _final_errors(self, method: str, path: str, response: Any) -> None:
        status = response.status_code
        if status in RETRYABLE:
            return
        hint = {
            401: "the built-in service refused the release task's token: give the API server, workers and "
            "triggerer the same RELEASE_MGMT_SERVICE_SECRET"
            if self.builtin
            else "the connection's credentials were refused; check login and password (or OAuth client)",
            403: "the user may not do this; check its roles (or the change's state model)",
            404: "not found; check the instance URL in the connection and the record's sys_id",
        }.get(status, "the instance refused the request")
        raise ServiceNowError(
            f"{method} {path} on {self.conn_id}: HTTP {status}: {hint}", status, _excerpt(response.text)
        )

    # -- change requests ----------------------------------------------------------------------------------

    def find(self, correlation_id: str) -> dict[str, str] | None:
        """The change with this correlation_id (the oldest, should there be several)."""
        escaped = correlation_id.replace("^", "^^")  # ServiceNow's encoded query: ^ separates terms
        found = self._send(
            "GET", TABLE, params={"sysparm_query": f"correlation_id={escaped}^ORDERBYnumber", "sysparm_limit": 1}
        )
        return found[0] if found else None

    def get(self, sys_id: str) -> dict[str, str]:
        result: dict[str, str] = self._send("GET", f"{TABLE}/{sys_id}")
        return result

    def ensure(self, correlation_id: str, fields: Mapping[str, Any]) -> tuple[dict[str, str], bool]:
        """The change for ``correlation_id``, created when missing: (record, created). Never two."""
        for attempt in range(self.retries + 1):
            existing = self.find(correlation_id)
            if existing is not None:
                return existing, False
            try:
                created: dict[str, str] = self._send_once_create(
                    redact_fields({**fields, "correlation_id": correlation_id})
                )
            except ServiceNowError as exc:
                if exc.status in (400, 401, 403, 404) or attempt == self.retries:
                    raise
                self.sleep(min(self.backoff * 2**attempt, self.max_wait))
                continue
            return created, True
        raise AssertionError("unreachable")

    def _send_once_create(self, body: Mapping[str, Any]) -> Any:
        """POST without the generic retry loop: a lost answer is resolved by looking up again first."""
        retries, self.retries = self.retries, 0
        try:
            return self._send("POST", TABLE, body=body)
        finally:
            self.retries = retries

    def update(self, sys_id: str, fields: Mapping[str, Any]) -> dict[str, str]:
        result: dict[str, str] = self._send("PATCH", f"{TABLE}/{sys_id}", body=redact_fields(fields))
        return result

    def approvals(self, sys_id: str) -> list[dict[str, str]]:
        """The approval records (``sysapproval_approver``) of change ``sys_id``."""
        result: list[dict[str, str]] = self._send(
            "GET", APPROVALS, params={"sysparm_query": f"sysapproval={sys_id}", "sysparm_limit": 200}
        )
        return result

    def login(self) -> str:
        """The user this hook creates records as (the connection's login)."""
        return "" if self.builtin else str(self._connection().login or "")

    def add_work_note(self, sys_id: str, text: str) -> dict[str, str]:
        return self.update(sys_id, {"work_notes": text})

    @staticmethod
    def state(record: Mapping[str, str]) -> int:
        """The stored state value (-5 New ... 3 Closed, 4 Canceled)."""
        return int(record["state"])


class _BuiltinHttpHook(HttpHook):
    """HttpHook whose connection is made in memory (the built-in service's URL), not looked up."""

    connection: Any = None

    def get_connection(self, conn_id: str | None = None) -> Any:  # type: ignore[override]
        return self.connection


class _NoAuth:
    """An auth type that adds nothing: the Bearer token is sent in the headers."""

    def __init__(self, *args: Any) -> None:
        pass

    def __call__(self, request: Any) -> Any:
        return request


def _result(method: str, path: str, conn_id: str, response: Any) -> Any:
    """The ``result`` of a successful answer; a malformed one fails at once with its status and start."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "result" not in body:
        raise ServiceNowError(
            f"{method} {path} on {conn_id}: malformed answer (HTTP {response.status_code}, not "
            f"a Table API result): {_excerpt(response.text, 200)}",
            response.status_code,
            _excerpt(response.text),
        )
    return body["result"]


def _retry_after(response: Any, default: float) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return default
