"""The change service's HTTP API: ServiceNow's Table API shapes for ``change_request`` and its approval
records (``sysapproval_approver``), a decision door for authorizers
(``/api/release_mgmt/change_request/{sys_id}/approve|reject``), and (lock_api.py) the environment locks release
runs take in turn (``/api/release_mgmt/locks``) and the step fences (``/api/release_mgmt/fences``), and
(gate_api.py) approval gates' progress across retries (``/api/release_mgmt/gates/progress``).

Every request, the API's docs included, passes one dependency (:func:`enforce`): it authenticates the
caller and finds the route's row in permissions.PERMISSIONS; no row, no access. The handlers then
apply the row's scope to the record at hand (the release's DAG permission, the task's own run, the
authorizer's own approval record). Errors come in ServiceNow's shape, never as a 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy.exc import DataError, OperationalError, StatementError

from release_mgmt.change_service import gate_api, lock_api
from release_mgmt.change_service import permissions as perms
from release_mgmt.change_service.locks import any_run_is_live
from release_mgmt.change_service.permissions import Caller
from release_mgmt.change_service.query import parse_query, select_fields
from release_mgmt.change_service.store import ChangeRuleError, ChangeStore, check_text
from release_mgmt.change_service.web import CallerDep, StoreDep, failure, read_json

TABLE = perms.CHANGES
APPROVALS = perms.APPROVALS
NOT_FOUND = {"message": "No Record found", "detail": "Record doesn't exist or ACL restricts the record retrieval"}
#: ``field`` then an operator; the rest of the term is the value (so a value may hold IN, LIKE, '=')
Authenticate = Callable[[Request], Caller | Awaitable[Caller]]


router = APIRouter()


def _readable(caller: Caller, record: dict[str, str] | None) -> dict[str, str] | None:
    return record if record is not None and caller.may_read_release(record.get("u_airflow_dag_id", "")) else None


@router.get(TABLE)
def list_changes(
    sysparm_query: str = "",
    sysparm_fields: str | None = None,
    sysparm_limit: int = 1000,
    store: ChangeStore = StoreDep,
    caller: Caller = CallerDep,
) -> dict[str, Any]:
    terms, order, descending = parse_query(sysparm_query)
    records = store.query(terms, max(0, min(sysparm_limit, 10000)), order, descending)
    return {"result": [select_fields(r, sysparm_fields) for r in records if _readable(caller, r)]}


@router.post(TABLE, status_code=201)
async def create_change(request: Request, store: ChangeStore = StoreDep, caller: Caller = CallerDep) -> Any:
    body = await read_json(request)
    if isinstance(body, JSONResponse):
        return body
    if caller.task is not None:  # a release task opens changes for its own run only
        for name, own in (("u_airflow_dag_id", caller.task.dag_id), ("u_airflow_run_id", caller.task.run_id)):
            if body.setdefault(name, own) != own:
                return failure(403, "Not this task's run", f"{name} must be {own!r}, the run the token is for")
    return {"result": store.create(body, caller.name)}


@router.get(TABLE + "/{sys_id}")
def get_change(
    sys_id: str, sysparm_fields: str | None = None, store: ChangeStore = StoreDep, caller: Caller = CallerDep
) -> Any:
    record = _readable(caller, store.get(sys_id))
    return failure(404, **NOT_FOUND) if record is None else {"result": select_fields(record, sysparm_fields)}


@router.patch(TABLE + "/{sys_id}")
async def update_change(
    sys_id: str, request: Request, store: ChangeStore = StoreDep, caller: Caller = CallerDep
) -> Any:
    record = _readable(caller, store.get(sys_id))
    if record is None:
        return failure(404, **NOT_FOUND)
    if not caller.owns_run(record["u_airflow_dag_id"], record["u_airflow_run_id"]):
        return failure(403, "Not this task's run", f"{record['number']} belongs to another release run")
    body = await read_json(request)
    return body if isinstance(body, JSONResponse) else {"result": store.update(sys_id, body, caller.name)}


@router.get(APPROVALS)
def list_approvals(
    sysparm_query: str = "",
    sysparm_fields: str | None = None,
    store: ChangeStore = StoreDep,
    caller: Caller = CallerDep,
) -> dict[str, Any]:
    """Approval records, e.g. ``sysparm_query=sysapproval=<change sys_id>``; only of changes the caller may read."""
    terms, _, _ = parse_query(sysparm_query)
    change = next((v for f, op, v in terms if f == "sysapproval" and op == "="), None)
    rows = store.approvals(change_sys_id=change)
    wanted = [r for r in rows if all((r.get(f) == v) == (op == "=") for f, op, v in terms)]
    readable = {sid for sid in {r["sysapproval"] for r in wanted} if _readable(caller, store.get(sid))}
    return {"result": [select_fields(r, sysparm_fields) for r in wanted if r["sysapproval"] in readable]}


@router.get(APPROVALS + "/{sys_id}")
def get_approval(sys_id: str, store: ChangeStore = StoreDep, caller: Caller = CallerDep) -> Any:
    rows = store.approvals(approval_sys_id=sys_id)
    if not rows or _readable(caller, store.get(rows[0]["sysapproval"])) is None:
        return failure(404, **NOT_FOUND)
    return {"result": rows[0]}


@router.patch(APPROVALS + "/{sys_id}")
async def answer_approval(
    sys_id: str, request: Request, store: ChangeStore = StoreDep, caller: Caller = CallerDep
) -> Any:
    """An authorizer answers their own approval record: {"state": "approved"|"rejected", "comments": ...}."""
    body = await read_json(request)
    if isinstance(body, JSONResponse):
        return body
    rows = store.approvals(approval_sys_id=sys_id)
    change = _readable(caller, store.get(rows[0]["sysapproval"])) if rows else None
    if change is None:
        return failure(404, **NOT_FOUND)
    if rows[0]["approver"] != caller.name:
        return failure(403, "Not your approval", f"this approval record of {change['number']} is not {caller.name}'s")
    state = body.get("state")
    if state not in ("approved", "rejected") or set(body) - {"state", "comments"}:
        return failure(400, "Invalid approval", 'write {"state": "approved" or "rejected", "comments": ...}')
    decided = _decide(request, store, change, caller, yes=state == "approved", why=body.get("comments", ""))
    return {"result": store.approvals(approval_sys_id=sys_id)[0] | {"change_state": decided["state"]}}


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
    change = _readable(caller, store.get(sys_id))
    if change is None:
        return failure(404, **NOT_FOUND)
    return {"result": _decide(request, store, change, caller, yes=approve_it, why=body.get("comment", ""))}


def _decide(
    request: Request, store: ChangeStore, change: dict[str, str], caller: Caller, *, yes: bool, why: Any
) -> Any:
    """The one path of every decision: the caller's own record, the triggering user excluded as Airflow knows it."""
    triggerer = request.app.state.run_triggerer(change["u_airflow_dag_id"], change["u_airflow_run_id"])
    return store.decide(change["sys_id"], yes, caller.name, check_text("comment", why), excluded=[triggerer or ""])


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
    app.add_exception_handler(StatementError, _database_refused)  # type: ignore[arg-type]
    app.include_router(router)
    app.include_router(lock_api.router)
    app.include_router(gate_api.router)
    _docs_routes(app)
    return app


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
