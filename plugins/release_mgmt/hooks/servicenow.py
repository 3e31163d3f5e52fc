"""A ServiceNow client for ``change_request`` on Airflow's HTTP provider (also speaks to the built-in service).

The connection (an HTTP connection) holds the instance URL in ``host`` (and ``schema``/``port``), the user in
``login``/``password``, and in ``extra`` optionally ``{"auth": "oauth", "client_id": ..., "client_secret": ...,
"token_endpoint": "/oauth_token.do"}`` for the OAuth password grant (hooks/servicenow_auth.py). Every call has
a timeout; 429 (honouring Retry-After), 5xx and dropped connections are retried with backoff (retry.py); 401,
403 and 404 fail at once saying what to fix. Creating a change is idempotent on ``correlation_id``: it is looked
up before every attempt, so a retry after a lost answer never creates a second change. Every text sent passes
Airflow's secrets masker first (masking.py).

The built-in service is called as the release task itself: each call carries a fresh service token bound to
the calling task's DAG run (``identity``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import requests
from airflow.providers.http.hooks.http import HttpHook

from release_mgmt.change_service import contract, service_token
from release_mgmt.change_service.service_token import TaskIdentity
from release_mgmt.errors import ServiceNowError, excerpt
from release_mgmt.hooks.servicenow_auth import OWN_EXTRA, ServiceTokenAuth, TokenLoginAuth
from release_mgmt.masking import redact_fields
from release_mgmt.retry import RETRYABLE_STATUSES, RetryPolicy, TryAgain, retry_after

TABLE, APPROVALS = contract.TABLE, contract.APPROVALS
#: sent with every call: reference fields as plain values, as this hook reads them (ServiceNow's default is a
#: ``{"link", "value"}`` object)
PLAIN = {"sysparm_exclude_reference_link": "true"}
DEFAULT_CONN_ID = "servicenow_default"
#: the name the built-in service's calls go by in messages (never looked up as a connection)
BUILTIN_CONN_ID = "release_mgmt_builtin_service"

#: what an error's text points to, first match wins: (words in the text, the cause in words)
CAUSES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("read-only", "readonly"), "its database is read-only"),
    (("database is locked", "lock timeout", "could not obtain lock"), "its database is locked by another writer"),
    (("database unavailable", "unable to open database", "could not connect to server"), "its database is down"),
    (("connectionerror", "refused", "clientconnectorerror", "remotedisconnected"), "{where} is down or unreachable"),
    (("timeout", "timed out"), "{where} did not answer within {timeout:g}s (overloaded or unreachable)"),
    (("http 429",), "it is rate-limiting this client"),
    (("http 5",), "{where} failed; its log says why"),
)

__all__ = ["DEFAULT_CONN_ID", "ServiceNowChangeHook", "ServiceNowError"]


def _dropped(exc: BaseException) -> bool:
    """A request that got no answer (refused, reset, timed out) is worth another attempt."""
    import aiohttp

    return isinstance(exc, requests.ConnectionError | requests.Timeout | aiohttp.ClientError | TimeoutError)


class ServiceNowChangeHook(HttpHook):
    """Table API calls for change requests, as the user of Airflow connection ``conn_id``."""

    conn_name_attr = "http_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    hook_name = "ServiceNow change requests (release_mgmt)"

    def __init__(
        self,
        conn_id: str = DEFAULT_CONN_ID,
        *,
        timeout: float = 30,
        retries: int = 4,
        backoff: float = 1.0,
        max_wait: float = 60,
        sleep: Callable[[float], Any] | None = None,
        identity: TaskIdentity | None = None,
        builtin: bool | None = None,
        deadline: float | None = None,
    ) -> None:
        """``deadline``: retry to this many seconds after the first attempt instead of ``retries`` times (an
        outage of the change system is ridden out to the caller's own deadline)."""
        super().__init__(method="GET", http_conn_id=conn_id)
        self.conn_id = conn_id
        self.identity = identity
        self.timeout = timeout
        attempts = retries + 1 if deadline is None else 10_000
        self.policy = RetryPolicy(attempts, backoff, max_wait, _dropped, sleep or time.sleep, deadline=deadline)
        self._builtin = builtin
        self._session: requests.Session | None = None
        #: the login the asynchronous calls use (servicenow_async.py), made on their first call
        self.async_auth: Any = None

    @classmethod
    def builtin_service(cls, **kwargs: Any) -> ServiceNowChangeHook:
        """A client of the built-in service inside Airflow, whatever ``servicenow_default`` points at
        (environment locks always live there)."""
        return cls(BUILTIN_CONN_ID, builtin=True, **kwargs)

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

    # -- the HTTP provider's seams --------------------------------------------------------------------------

    def get_connection(self, conn_id: str | None = None) -> Any:  # type: ignore[override]
        """The configured connection; for the built-in service, one made in memory from its URL."""
        if self.builtin:
            from airflow.sdk import Connection

            return Connection(conn_id=BUILTIN_CONN_ID, conn_type="http", host=service_token.base_url())
        return HttpHook.get_connection(conn_id or self.conn_id)

    def _extract_auth(self, connection: Any) -> Any:
        """The login as a requests auth object (see servicenow_auth.py)."""
        if self.builtin:
            return ServiceTokenAuth(self.identity)
        if (connection.extra_dejson or {}).get("auth") in ("oauth", "airflow"):
            self._set_base_url(connection)
            return TokenLoginAuth(connection, self.base_url, self.timeout)
        return super()._extract_auth(connection)

    def _configure_session_from_extra(self, session: Any, connection: Any, extra_options: dict[str, Any]) -> Any:
        """The provider turns unknown extra keys into headers: never the login settings and secrets."""
        session = super()._configure_session_from_extra(session, connection, extra_options)
        for key in OWN_EXTRA:
            session.headers.pop(key, None)
        return session

    # -- calls ----------------------------------------------------------------------------------------------

    def call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        """One call with the retry policy; the answer's ``result``."""
        return self._send(method, path, params=params, body=body, policy=self.policy)

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        policy: RetryPolicy,
    ) -> Any:
        tries = 0
        try:
            for attempt in policy.retrying():
                with attempt:
                    tries += 1
                    return self._once(method, path, params, body)
        except Exception as exc:
            raise self._failed(method, path, tries, exc) from exc
        raise AssertionError("unreachable: the retry loop returns or raises")

    async def with_policy(self, method: str, path: str, attempt: Callable[[], Awaitable[Any]]) -> Any:
        """``attempt`` (a coroutine function doing one call) under the retry policy, waiting with asyncio."""
        tries = 0
        try:
            async for each in self.policy.async_retrying():
                with each:
                    tries += 1
                    return await attempt()
        except Exception as exc:
            raise self._failed(method, path, tries, exc) from exc
        raise AssertionError("unreachable: the retry loop returns or raises")

    def target(self) -> str:
        """What a message names as called: the built-in service and where it answers, or the connection."""
        if self.builtin:
            return f"the built-in change service ({service_token.base_url()}, in Airflow's API server)"
        return f"connection {self.conn_id}"

    def likely_cause(self, last: str) -> str:
        """The probable cause of an answer that never came right, in words (empty when nothing points to one)."""
        text = last.lower()
        where = "Airflow's API server (which serves it)" if self.builtin else "the instance"
        for words, cause in CAUSES:
            if any(w in text for w in words):
                return "; likely cause: " + cause.format(where=where, timeout=self.timeout)
        return ""

    def _failed(self, method: str, path: str, tries: int, exc: Exception) -> Exception:
        """What a call that did not succeed raises: a ServiceNowError saying what to fix."""
        if isinstance(exc, ServiceNowError):
            return exc
        if "AirflowNotFoundException" in type(exc).__name__:
            return ServiceNowError(
                f"{self.conn_id}: no such Airflow connection; add an HTTP connection "
                "with the instance URL, login and password"
            )
        if isinstance(exc, TryAgain) or _dropped(exc):
            last = exc.why if isinstance(exc, TryAgain) else f"{type(exc).__name__}: {excerpt(str(exc), 200)}"
            return ServiceNowError(
                f"{method} {path} on {self.target()} failed after {tries} {'try' if tries == 1 else 'tries'}: "
                f"{last}{self.likely_cause(last)}",
                excerpt=last,
            )
        return exc

    def _once(self, method: str, path: str, params: Mapping[str, Any] | None, body: Mapping[str, Any] | None) -> Any:
        if self._session is None:
            self._session = self.get_conn(headers={"Accept": "application/json"})
        response = self._session.request(
            method,
            self.url_from_endpoint(path),
            params={**PLAIN, **(params or {})},
            json=dict(body) if body is not None else None,
            timeout=self.timeout,
        )
        return self.interpret(method, path, response.status_code, response.text, response.headers)

    def interpret(self, method: str, path: str, status: int, text: str, headers: Any) -> Any:
        """The ``result`` of an answer; TryAgain for 429 and 5xx; a ServiceNowError saying what to fix for the
        rest (and for an answer that is not a Table API result)."""
        if status < 300:
            try:
                body = json.loads(text)
            except ValueError:
                body = None
            if not isinstance(body, dict) or "result" not in body:
                raise ServiceNowError(
                    f"{method} {path} on {self.conn_id}: malformed answer (HTTP {status}, not "
                    f"a Table API result): {excerpt(text, 200)}",
                    status,
                    excerpt(text),
                )
            return body["result"]
        if status in RETRYABLE_STATUSES:
            raise TryAgain(f"HTTP {status}: {excerpt(text)}", retry_after(headers))
        raise ServiceNowError(
            f"{method} {path} on {self.conn_id}: HTTP {status}: {self._hint(status)}", status, excerpt(text)
        )

    def _hint(self, status: int) -> str:
        if status == 401:
            if self.builtin:
                return (
                    "the built-in service refused the release task's token: give the API server, workers and "
                    "triggerer the same RELEASE_MGMT_SERVICE_SECRET"
                )
            return "the connection's credentials were refused; check login and password (or OAuth client)"
        return {
            403: "the user may not do this; check its roles (or the change's state model)",
            404: "not found; check the instance URL in the connection and the record's sys_id",
        }.get(status, "the instance refused the request")

    # -- change requests ----------------------------------------------------------------------------------

    def find(self, correlation_id: str) -> dict[str, str] | None:
        """The change with this correlation_id (the oldest, should there be several)."""
        escaped = correlation_id.replace("^", "^^")  # ServiceNow's encoded query: ^ separates terms
        query = {"sysparm_query": f"correlation_id={escaped}^ORDERBYnumber", "sysparm_limit": 1}
        found = self.call("GET", TABLE, params=query)
        return found[0] if found else None

    def get(self, sys_id: str) -> dict[str, str]:
        result: dict[str, str] = self.call("GET", f"{TABLE}/{sys_id}")
        return result

    def ensure(self, correlation_id: str, fields: Mapping[str, Any]) -> tuple[dict[str, str], bool]:
        """The change for ``correlation_id``, created when missing: (record, created). Never two: a create is
        sent once per attempt (never retried blindly), and every attempt looks the change up first."""
        once = RetryPolicy(attempts=1, retry_on=_dropped)
        body = redact_fields({**fields, "correlation_id": correlation_id})

        def attempt() -> tuple[dict[str, str], bool]:
            existing = self.find(correlation_id)
            if existing is not None:
                return existing, False
            try:
                return self._send("POST", TABLE, body=body, policy=once), True
            except ServiceNowError as exc:
                if exc.status in (400, 401, 403, 404):
                    raise
                raise TryAgain(str(exc)) from exc

        tries = 0
        try:
            for each in self.policy.retrying():
                with each:
                    tries += 1
                    return attempt()
        except TryAgain as exc:
            last = exc.__cause__ if isinstance(exc.__cause__, ServiceNowError) else None
            why = str(last) if last else exc.why
            raise ServiceNowError(
                f"creating a change on {self.target()} failed after {tries} {'try' if tries == 1 else 'tries'} "
                f"(each looks it up first): {why}",
                last.status if last else 0,
                last.excerpt if last else exc.why,
            ) from exc
        raise AssertionError("unreachable: the retry loop returns or raises")

    def update(self, sys_id: str, fields: Mapping[str, Any]) -> dict[str, str]:
        result: dict[str, str] = self.call("PATCH", f"{TABLE}/{sys_id}", body=redact_fields(fields))
        return result

    def approvals(self, sys_id: str) -> list[dict[str, str]]:
        """The approval records (``sysapproval_approver``) of change ``sys_id``: ``approver`` by the user's name
        (on ServiceNow the value is the user's sys_id, the display value their name), the rest by value."""
        query = {"sysparm_query": f"sysapproval={sys_id}", "sysparm_limit": 200, "sysparm_display_value": "all"}
        rows: list[dict[str, Any]] = self.call("GET", APPROVALS, params=query)
        return [
            {
                k: str((v.get("display_value") if k == "approver" else v.get("value")) if isinstance(v, dict) else v)
                for k, v in row.items()
            }
            for row in rows
        ]

    def login(self) -> str:
        """The user this hook creates records as (the connection's login)."""
        return "" if self.builtin else str(self.get_connection(self.conn_id).login or "")

    def add_work_note(self, sys_id: str, text: str) -> dict[str, str]:
        """Append ``text`` to the change's work notes (the journal)."""
        return self.update(sys_id, {"work_notes": text})
