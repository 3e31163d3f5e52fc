"""Who calls the change service: a release task (a service token bound to its run), an Airflow user (inside
Airflow: Airflow's own token as Bearer, the UI's session cookie, or HTTP Basic with the user's Airflow password,
checked by the auth manager's own token endpoint), or, when the service runs on its own, a user of HTTP Basic."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from release_mgmt.change_service import permissions as perms
from release_mgmt.change_service.permissions import Caller
from release_mgmt.change_service.service_token import (
    REFUSED_HINT,
    SERVICE_PRINCIPAL,
    addressed_to_service,
    check_token,
)


def service_caller(token: str) -> Caller | None:
    """The release task a service token names; None for a token that is not the service's (a user's); a 401
    naming the shared secret for one addressed to the service that does not verify."""
    if task := check_token(token):
        return Caller.release_task(task)
    if addressed_to_service(token):
        raise HTTPException(401, detail=REFUSED_HINT)
    return None


UNAUTHENTICATED = "Required to provide Auth information"
#: how long a verified Basic login is reused before the auth manager is asked again
BASIC_SECONDS = 60
_verified: dict[str, tuple[str, float]] = {}
_token_app: list[Any] = []


def basic_credentials(header: str) -> tuple[str, str]:
    """(user, password) of an ``Authorization: Basic ...`` header; ("", "") when it is malformed."""
    try:
        name, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return "", ""
    return name, password


def basic_auth(users: dict[str, tuple[str, str]]) -> Callable[[Request], Caller]:
    """An authenticator for running the service on its own: HTTP Basic against ``users`` (name: (password,
    role)), role one of permissions.HUMANS or ``release_task`` (an integration user, as ServiceNow has);
    a Bearer service token (service_token.py) is a release task bound to its run."""

    def authenticate(request: Request) -> Caller:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and (caller := service_caller(header[7:])):
            return caller
        if header.startswith("Basic "):
            name, password = basic_credentials(header)
            if name in users and hmac.compare_digest(users[name][0], password):
                role = users[name][1]
                return Caller(name, role if role == perms.RELEASE_TASK else perms.role_of(role))
        raise HTTPException(401, detail=UNAUTHENTICATED, headers={"WWW-Authenticate": "Basic"})

    return authenticate


async def airflow_caller(request: Request) -> Caller:
    """Inside Airflow: a release task's service token, or an Airflow user's token (Bearer header, or the UI's
    session cookie). A user's reads are limited to the DAGs Airflow's auth manager lets them read."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    header = request.headers.get("Authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN, "")
    if header.lower().startswith("basic "):
        if request.method == "POST":  # a browser may send remembered Basic credentials with a form from elsewhere
            _same_origin_json(request)
        token = await airflow_token_for(header)
    if not token:
        raise HTTPException(401, detail=UNAUTHENTICATED)
    if not header and request.method not in ("GET", "HEAD"):
        _same_origin_json(request)
    if caller := service_caller(token):
        return caller
    user = await resolve_user_from_token(token)
    name = str(user.get_name())
    if name == SERVICE_PRINCIPAL:
        raise HTTPException(403, detail="this name is reserved for release tasks")
    manager = get_auth_manager()

    def can_read(dag_id: str) -> bool:  # a record of no release is nobody's to read
        return bool(dag_id) and bool(manager.is_authorized_dag(method="GET", details=DagDetails(id=dag_id), user=user))

    return Caller(name, perms.role_of(getattr(user, "role", None)), None, can_read)


async def airflow_token_for(header: str) -> str:
    """Airflow's token for the user and password of a Basic header, from the auth manager's own token endpoint
    (``POST /auth/token``, called in this process): the same password as the UI, whatever the auth manager.
    A verified login is reused for BASIC_SECONDS (keyed by a hash, never the password); a refused one is a 401."""
    import httpx
    from airflow.api_fastapi.app import get_auth_manager

    key = hashlib.sha256(header.encode()).hexdigest()
    if (known := _verified.get(key)) and known[1] > time.monotonic():
        return known[0]
    name, password = basic_credentials(header)
    if not name:
        raise HTTPException(401, detail=UNAUTHENTICATED)
    if not _token_app:
        _token_app.append(get_auth_manager().get_fastapi_app())
    transport = httpx.ASGITransport(app=_token_app[0])
    async with httpx.AsyncClient(transport=transport, base_url="http://auth-manager") as client:
        answer = await client.post("/token", json={"username": name, "password": password})
    token = answer.json().get("access_token") if answer.status_code in (200, 201) else None
    if not token:
        raise HTTPException(401, detail="User Not Authenticated: Airflow refused this user and password")
    if len(_verified) > 1000:
        _verified.clear()
    _verified[key] = (str(token), time.monotonic() + BASIC_SECONDS)
    return str(token)


def _same_origin_json(request: Request) -> None:
    """A write signed by the UI's session cookie must come from a page of this Airflow: a JSON request (which a
    form on another site cannot send without a CORS preflight Airflow never grants) from this origin. The cookie
    is SameSite=Lax already; this holds when a browser or proxy does not honour that."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    origin = urlsplit(request.headers.get("origin", "")).netloc
    if kind != "application/json" or (origin and origin not in _own_hosts(request)):
        raise HTTPException(
            403, detail="a write with the UI's session must be a JSON request from this Airflow's pages"
        )


def _own_hosts(request: Request) -> set[str]:
    """The host[:port] this Airflow answers as: the request's own, and ``[api] base_url``'s (behind a proxy that
    rewrites the Host header or terminates TLS)."""
    from airflow.configuration import conf

    hosts = {request.url.netloc}
    if base := conf.get("api", "base_url", fallback=""):
        hosts.add(urlsplit(base).netloc)
    return hosts - {""}
