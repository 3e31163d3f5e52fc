"""What every route of the change service shares: errors in ServiceNow's shape, the JSON body, the store, and
the one dependency every request passes (:func:`enforce`: who calls, and whether the permission table lets them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from release_mgmt.change_service import permissions as perms
from release_mgmt.change_service.permissions import Caller
from release_mgmt.change_service.store import ChangeStore

T = TypeVar("T")


def failure(status: int, message: str, detail: str | None = "") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "detail": detail}, "status": "failure"}, status_code=status)


def store_of(request: Request) -> ChangeStore:
    state = request.app.state
    if state.store is None:  # opened on first use: importing the plugin must not touch a database
        state.store = ChangeStore(state.store_url())
    store: ChangeStore = state.store
    return store


def opened_on_first_use(request: Request, name: str, make: Callable[[Engine], T]) -> T:
    """``app.state.<name>``: a store over the change database's engine (locks, fences, gates), made on first use."""
    state = request.app.state
    if getattr(state, name, None) is None:
        setattr(state, name, make(store_of(request).engine))
    made: T = getattr(state, name)
    return made


async def authenticated(request: Request) -> Caller:
    """Who calls (the app's authenticator, sync or async); raises HTTPException 401 for an anonymous caller."""
    answer = request.app.state.authenticate(request)
    caller: Caller = await answer if isinstance(answer, Awaitable) else answer
    return caller


async def enforce(request: Request) -> Caller:
    """Authenticate the caller (401 when anonymous) and allow the call only when the permission table has a
    row for this route naming the caller's role (403 otherwise). Authorizers are decided per record."""
    if problem := request.app.state.secret_problem():
        raise HTTPException(503, detail=problem)
    caller = await authenticated(request)
    route = request.scope.get("route")
    row = perms.permission(request.method, getattr(route, "path", ""))
    if row is None:
        raise HTTPException(403, detail="No permission is defined for this route")
    allowed = caller.role in row.roles or (perms.AUTHORIZER in row.roles and not caller.is_release_task)
    if not allowed:
        raise HTTPException(403, detail=f"{caller.role} may not {row.action}")
    return caller


StoreDep = Depends(store_of)
CallerDep = Depends(enforce)


async def read_json(request: Request) -> Any:
    try:
        body = await request.json() if await request.body() else {}
    except ValueError:
        return failure(400, "Exception while reading request", "the body is not valid JSON")
    if not isinstance(body, dict):
        return failure(400, "Exception while reading request", "the body must be a JSON object")
    return body
