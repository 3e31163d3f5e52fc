"""The change service's HTTP API: ServiceNow's Table API (table_api.py: ``change_request``,
``sysapproval_approver``, ``sys_journal_field``), its Change Management API (change_api.py: ``sn_chg_rest``), a
decision door for authorizers (``/api/release_mgmt/change_request/{sys_id}/approve|reject``), the environment
locks and step fences (lock_api.py), approval gates' progress across retries (gate_api.py) and the notification outbox
(notify_api.py).

Every request, the API's docs included, passes one dependency (web.enforce): it authenticates the caller and
finds the route's row in permissions.PERMISSIONS; no row, no access. The handlers then apply the row's scope to
the record at hand. Errors come in ServiceNow's shape (an unknown table, a method a route does not take, a
malformed parameter included), never as a 500.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy.exc import DataError, OperationalError, StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException

from release_mgmt.change_service import change_api, gate_api, lock_api, notify_api, table_api
from release_mgmt.change_service import permissions as perms
from release_mgmt.change_service.locks import any_run_is_live
from release_mgmt.change_service.permissions import Caller
from release_mgmt.change_service.store import ChangeRuleError, ChangeStore
from release_mgmt.change_service.tables import TABLES
from release_mgmt.change_service.web import CallerDep, StoreDep, authenticated, failure, read_json

Authenticate = Callable[[Request], Caller | Awaitable[Caller]]
TABLE_PREFIX = "/api/now/table/"

router = APIRouter()


@router.post(perms.DECIDE + "/approve")
async def approve(sys_id: str, request: Request, store: ChangeStore = StoreDep, caller: Caller = CallerDep) -> Any:
    """An authorizer approves a change waiting in Authorize (body: {"comment": ...}): answers their own record."""
    return await _door(sys_id, True, request, store, caller)


@router.post(perms.DECIDE + "/reject")
async def reject(sys_id: str, request: Request, store: ChangeStore = StoreDep, caller: Caller = CallerDep) -> Any:
    """An authorizer rejects a change waiting in Authorize (body: {"comment": why}, required)."""
    return await _door(sys_id, False, request, store, caller)


async def _door(sys_id: str, approve_it: bool, request: Request, store: ChangeStore, caller: Caller) -> Any:
    body = await read_json(request)
    if isinstance(body, JSONResponse):
        return body
    change = table_api.readable(caller, store.get(sys_id))
    if change is None:
        return failure(404, **table_api.NOT_FOUND)
    return {"result": table_api.decide(request, store, change, caller, yes=approve_it, why=body.get("comment", ""))}


def _docs_routes(app: FastAPI) -> None:
    """The API's description and docs, behind the same enforcement as every other route."""

    def openapi_url(request: Request) -> str:
        return f"{request.scope.get('root_path', '').rstrip('/')}/openapi.json"

    @app.get("/openapi.json", include_in_schema=False, dependencies=[CallerDep])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[CallerDep])
    def docs(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi_url(request), title=app.title)

    @app.get("/redoc", include_in_schema=False, dependencies=[CallerDep])
    def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi_url(request), title=app.title)


def create_app(store: ChangeStore | None, authenticate: Authenticate) -> FastAPI:
    """The API over ``store``; ``authenticate(request)`` returns the :class:`Caller` or raises an
    HTTPException (401) for anonymous or unknown callers."""
    app = FastAPI(
        title="release_mgmt change service",
        description=__doc__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[CallerDep],  # a route added without a permission row is refused, never open
    )
    app.state.store = store
    app.state.store_url = None  # where to open the store when none is given (in_airflow.py sets it)
    app.state.locks = None
    app.state.fences = None
    app.state.gates = None
    app.state.gate_answers = gate_api.no_answers
    app.state.run_state = any_run_is_live
    app.state.run_triggerer = _no_triggerer
    app.state.secret_problem = lambda: ""
    app.state.authenticate = authenticate
    app.add_exception_handler(ChangeRuleError, _rule_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _no_route)  # type: ignore[arg-type]
    app.add_exception_handler(StatementError, _database_refused)  # type: ignore[arg-type]
    app.add_middleware(VersionedPaths)
    app.add_middleware(notify_api.WakeSender)
    app.include_router(table_api.router)
    app.include_router(change_api.router)
    app.include_router(router)
    app.include_router(lock_api.router)
    app.include_router(gate_api.router)
    app.include_router(notify_api.router)
    _docs_routes(app)
    return app


class VersionedPaths:
    """ServiceNow's versioned URLs (``/api/now/v1/table/...``, ``/api/now/v2/table/...``,
    ``/api/sn_chg_rest/v1/change...``) are served as the default ones: one version of each API is served."""

    VERSIONED = re.compile(r"/api/now/v[12]/table/|/api/sn_chg_rest/v1/change")

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            root, path = scope.get("root_path", ""), scope["path"]
            inner = path[len(root) :] if root and path.startswith(root) else path
            if match := self.VERSIONED.match(inner):
                plain = TABLE_PREFIX if match.group().startswith("/api/now") else "/api/sn_chg_rest/change"
                served = path[: len(path) - len(inner)] + plain + inner[match.end() :]
                scope = {**scope, "path": served, "raw_path": served.encode()}
        await self.app(scope, receive, send)


def _no_triggerer(dag_id: str, run_id: str) -> str | None:
    return None


async def _rule_error(request: Request, exc: ChangeRuleError) -> JSONResponse:
    return failure(exc.status, str(exc), exc.detail)


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    where = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg', '')}" for e in exc.errors()[:5])
    return failure(400, "Invalid request", where)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    message = {401: "User Not Authenticated", 503: "Service not configured"}.get(exc.status_code, "Forbidden")
    response = failure(exc.status_code, message, str(exc.detail))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _no_route(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """A path or method no route serves, in ServiceNow's shape, and only to a signed-in caller (an anonymous one
    learns nothing but 401): an unknown table is ``Invalid table <name>`` (400, as ServiceNow answers), a method a
    route does not take is 405 naming the ones it does."""
    try:
        await authenticated(request)
    except HTTPException as refused:
        return await _http_error(request, refused)
    path = request.url.path.removeprefix(request.scope.get("root_path", ""))
    if exc.status_code == 404 and path.startswith(TABLE_PREFIX):
        table = path.removeprefix(TABLE_PREFIX).split("/")[0]
        if table not in TABLES:
            return failure(400, f"Invalid table {table}", None)
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        response = failure(405, "Method not Supported", f"{request.method} is not served here; use {allowed}")
        response.headers["Allow"] = allowed
        return response
    return failure(exc.status_code, "Requested URI does not represent any resource", path)


async def _database_refused(request: Request, exc: StatementError) -> JSONResponse:
    """A value the database refuses is a 400; a database that cannot write now (read-only, locked, down) is a
    503 saying which, with Retry-After: clients retry to their own deadline, people see why their click failed."""
    if isinstance(exc, DataError):
        return failure(400, "Invalid value", "the database refused a value of this request")
    if isinstance(exc, OperationalError):
        text = str(exc.orig).lower()
        why = next(
            (cause for words, cause in _DATABASE_CAUSES if any(w in text for w in words)),
            "the change database did not answer",
        )
        response = failure(503, "Change database unavailable", f"{why}; nothing was changed, try again shortly")
        response.headers["Retry-After"] = "5"
        return response
    raise exc


_DATABASE_CAUSES = (
    (("readonly", "read-only", "read only"), "the change database is read-only"),
    (("locked", "lock timeout", "could not obtain lock"), "the change database is locked by another writer"),
    (("unable to open", "could not connect", "connection refused", "server closed"), "the change database is down"),
)
