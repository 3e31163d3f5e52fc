"""A small client of Airflow's REST API with the caller's own credentials (for the CLI).

Settings come from the environment: ``AIRFLOW_API_URL`` (default: Airflow's own ``AIRFLOW__API__HOST`` and
``AIRFLOW__API__PORT``, else http://127.0.0.1:8080) and
either ``AIRFLOW_API_TOKEN`` or ``AIRFLOW_USERNAME`` + ``AIRFLOW_PASSWORD`` (asked for on a
terminal when missing). The password is sent only to ``/auth/token`` and never printed.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from release_mgmt.errors import ApiError, ReleaseMgmtError

__all__ = ["AirflowApi", "ApiError"]


class AirflowApi:
    """Calls as one user; ``env`` defaults to the process environment."""

    def __init__(self, env: Mapping[str, str] | None = None, timeout: float = 30) -> None:
        env = os.environ if env is None else env
        self.url = (env.get("AIRFLOW_API_URL") or _api_server(env)).rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise ReleaseMgmtError(f"AIRFLOW_API_URL must be an http(s) URL, not {self.url!r}")
        self.timeout = timeout
        self._token = env.get("AIRFLOW_API_TOKEN") or ""
        self._user = env.get("AIRFLOW_USERNAME") or ""
        self._password = env.get("AIRFLOW_PASSWORD") or ""

    def token(self) -> str:
        """The Bearer token of this client's user (logging in when needed)."""
        return self._credentials()

    def _credentials(self) -> str:
        if self._token:
            return self._token
        if not self._user and sys.stdin.isatty():
            self._user = input("Airflow user: ")
        if not self._password and sys.stdin.isatty():
            self._password = getpass.getpass(f"Password for {self._user}: ")
        if not (self._user and self._password):
            raise ReleaseMgmtError("no credentials: set AIRFLOW_API_TOKEN, or AIRFLOW_USERNAME and AIRFLOW_PASSWORD")
        answer = self.send("POST", "/auth/token", {"username": self._user, "password": self._password}, auth=False)
        self._token = str(answer["access_token"])
        return self._token

    def send(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        """One call; the decoded JSON answer, or ApiError with the status and the answer's text."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self._credentials()}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - http(s) only
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(method, path, exc.code, exc.read().decode(errors="replace")) from None
        except OSError as exc:
            raise ReleaseMgmtError(f"cannot reach Airflow at {self.url} ({exc}); set AIRFLOW_API_URL") from None
        return json.loads(raw or b"null")

    def get(self, path: str, **query: Any) -> Any:
        suffix = "?" + urllib.parse.urlencode(query) if query else ""
        return self.send("GET", path + suffix)

    def patch(self, path: str, body: Any) -> Any:
        return self.send("PATCH", path, body)


def _api_server(env: Mapping[str, str]) -> str:
    """Where the API server listens by Airflow's own settings (what scripts/airflow-env.sh exports)."""
    host = env.get("AIRFLOW__API__HOST") or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{env.get('AIRFLOW__API__PORT') or '8080'}"
