"""Who calls the change service: a release task (a service token bound to its run), an Airflow user (inside
Airflow: Airflow's own token, Bearer or the UI's session cookie), or, when the service runs on its own, a user
of HTTP Basic."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable
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


def basic_auth(users: dict[str, tuple[str, str]]) -> Callable[[Request], Caller]:
    """An authenticator for running the service on its own: HTTP Basic against ``users`` (name: (password,
    role)), role one of permissions.HUMANS or ``release_task`` (an integration user, as ServiceNow has);
    a Bearer service token (service_token.py) is a release task bound to its run."""

    def authenticate(request: Request) -> Caller:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and (caller := service_caller(header[7:])):
            return caller
        if header.startswith("Basic "):
            try:
                name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                name, password = "", ""
            if name in users and hmac.compare_digest(users[name][0], password):
                role = users[name][1]
                return Caller(name, role if role == perms.RELEASE_TASK else perms.role_of(role))
        raise HTTPException(401, detail="User Not Authenticated", headers={"WWW-Authenticate": "Basic"})

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
    if not token:
        raise HTTPException(401, detail="User Not Authenticated")
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
