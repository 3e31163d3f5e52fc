"""The ServiceNow hook's calls for triggers: aiohttp on the triggerer's event loop (no thread, no blocking
sleep), under the hook's own retry policy, logins and answer rules."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import aiohttp

from release_mgmt.change_service import contract
from release_mgmt.hooks.servicenow_auth import ServiceTokenAuth, TokenLoginAuth

if TYPE_CHECKING:
    from release_mgmt.hooks.servicenow import ServiceNowChangeHook


async def _connection(hook: ServiceNowChangeHook) -> Any:
    if hook.builtin:
        return hook.get_connection()
    from airflow.providers.common.compat.connection import get_async_connection

    return await get_async_connection(conn_id=hook.conn_id)


async def _login(auth: TokenLoginAuth, force: bool = False) -> str:
    """The login's Bearer token, fetched with aiohttp when it is missing, expiring or refused."""
    if auth.token and not force and not auth.expiring():
        return auth.token
    url, kwargs = auth.login_request(force)
    timeout = aiohttp.ClientTimeout(total=auth.timeout)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, headers={"Accept": "application/json"}, **kwargs) as response,
    ):
        status, text = response.status, await response.text()
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if not auth.accept(status, body, text, force):
        return await _login(auth, force=True)
    return auth.token


async def get_record(hook: ServiceNowChangeHook, sys_id: str) -> dict[str, str]:
    """``GET change_request/{sys_id}`` as the hook would send it, asynchronously."""
    result: dict[str, str] = await request(
        hook, "GET", f"{contract.TABLE}/{sys_id}?sysparm_exclude_reference_link=true"
    )
    return result


async def request(hook: ServiceNowChangeHook, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One call as the hook would send it (its ``result``), asynchronously."""
    conn = await _connection(hook)
    hook._set_base_url(conn)
    if hook.async_auth is None:  # kept on the hook: a token login is reused across a trigger's polls
        hook.async_auth = hook._extract_auth(conn)
    auth = hook.async_auth
    timeout = aiohttp.ClientTimeout(total=hook.timeout)

    async def once(force_login: bool = False) -> tuple[int, str, Any]:
        headers = {"Accept": "application/json"}
        if isinstance(auth, ServiceTokenAuth):
            headers["Authorization"] = auth.header()
        elif isinstance(auth, TokenLoginAuth):
            headers["Authorization"] = f"Bearer {await _login(auth, force_login)}"
        elif conn.login:
            headers["Authorization"] = aiohttp.encode_basic_auth(str(conn.login), str(conn.password or ""))
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, hook.url_from_endpoint(path), headers=headers, json=body) as response,
        ):
            return response.status, await response.text(), response.headers

    async def attempt() -> Any:
        status, text, headers = await once()
        if status == 401 and isinstance(auth, TokenLoginAuth):  # a refused token: log in again, once
            status, text, headers = await once(force_login=True)
        return hook.interpret(method, path, status, text, headers)

    return await hook.with_policy(method, path, attempt)
