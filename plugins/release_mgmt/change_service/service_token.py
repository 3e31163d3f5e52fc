"""How release tasks reach the built-in change service inside Airflow with no connection configured.

Tasks hold no user's credentials, so they sign a short-lived service token with a secret the API
server shares: ``$RELEASE_MGMT_SERVICE_SECRET``, else Airflow's ``[api_auth] jwt_secret`` (which
multi-process deployments must share anyway), else a secret file in AIRFLOW_HOME (one machine).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

PREFIX = "rmsvc"
SERVICE_USER = "release_mgmt"


def _secret() -> bytes:
    if value := os.environ.get("RELEASE_MGMT_SERVICE_SECRET"):
        return value.encode()
    from airflow.configuration import AIRFLOW_HOME, conf

    if value := conf.get("api_auth", "jwt_secret", fallback=""):
        return value.encode()
    path = Path(AIRFLOW_HOME) / "release_mgmt_service.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _sign(payload: str) -> str:
    return hmac.new(_secret(), payload.encode(), hashlib.sha256).hexdigest()


def make_token(user: str = SERVICE_USER, ttl: float = 600) -> str:
    """A token for ``user`` valid ``ttl`` seconds."""
    payload = f"{PREFIX}.{user}.{int(time.time() + ttl)}"
    return f"{payload}.{_sign(payload)}"


def check_token(token: str) -> str | None:
    """The user of a valid, unexpired service token; None otherwise."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != PREFIX or not parts[2].isdigit():
        return None
    payload = ".".join(parts[:3])
    if not hmac.compare_digest(_sign(payload), parts[3]) or int(parts[2]) < time.time():
        return None
    return parts[1]


def base_url() -> str:
    """Where the built-in service answers: $RELEASE_MGMT_CHANGE_SERVICE_URL, else the API server's URL."""
    if value := os.environ.get("RELEASE_MGMT_CHANGE_SERVICE_URL"):
        return value.rstrip("/")
    from airflow.configuration import conf

    api = conf.get("api", "base_url", fallback="") or ""
    if not api:
        execution = conf.get("core", "execution_api_server_url", fallback="") or "http://localhost:8080/execution/"
        api = execution.rstrip("/").removesuffix("/execution")
    return f"{api.rstrip('/')}/change-service"
