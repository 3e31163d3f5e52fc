"""The change service's HTTP API: ServiceNow's Table API shapes for ``change_request``, an approval
action for authorizers (``/api/release_mgmt/change_request/{sys_id}/approve|reject``), and the
environment locks release runs take in turn (``/api/release_mgmt/locks``: anyone signed in reads
them; only release tasks, with the service token, acquire and release)."""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from release_mgmt.change_service.locks import API_PATH as LOCKS
from release_mgmt.change_service.locks import Holder, LockStore, any_run_is_live
from release_mgmt.change_service.service_token import SERVICE_USER
from release_mgmt.change_service.store import ChangeRuleError, ChangeStore

TABLE = "/api/now/table/change_request"
NOT_FOUND = {"message": "No Record found", "detail": "Record doesn't exist or ACL restricts the record retrieval"}


def parse_query(query: str) -> tuple[dict[str, str], str, bool]:
    """``a=1^b=2^ORDERBYDESCnumber`` -> ({a: 1, b: 2}, "number", True). Only equality terms are served."""
    filters: dict[str, str] = {}
    order, descending = "sys_created_on", False
    for term in filter(None, query.split("^")):
        if term.startswith("ORDERBYDESC"):
            order, descending = term.removeprefix("ORDERBYDESC"), True
        elif term.startswith("ORDERBY"):
            order, descending = term.removeprefix("ORDERBY"), False
        elif "=" in term and not any(op in term for op in ("!=", "<", ">", "LIKE", "IN")):
            name, value = term.split("=", 1)
            filters[name] = value
        else:
            raise ChangeRuleError("Invalid query", f"only field=value terms are supported, not {term!r}", 400)
    return filters, order, descending


def _fields(record: dict[str, str], fields: str | None) -> dict[str, str]:
    if not fields:
        return record
    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    return {f: record.get(f, "") for f in wanted}


def _failure(status: int, message: str, detail: str = "") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "detail": detail}, "status": "failure"}, status_code=status)


def _store(request: Request) -> ChangeStore:
    state = request.app.state
    if state.store is None:  # opened on first use: importing the plugin must not touch a database
        state.store = ChangeStore(state.store_url())
    store: ChangeStore = state.store
    return store


def _locks(request: Request) -> LockStore:
    state = request.app.state
    if state.locks is None:
        state.locks = LockStore(_store(request).engine, state.run_state)
    locks: LockStore = state.locks
    return locks


def _user(request: Request) -> str:
    """The authenticated caller (the app's ``authenticate`` refuses anonymous requests)."""
    user: str = request.app.state.authenticate(request)
    return user


router = APIRouter()
StoreDep = Depends(_store)
LocksDep = Depends(_locks)
UserDep = Depends(_user)
LOCK_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,49}(/[a-z][a-z0-9_-]{0,49})?$")


@router.get(TABLE)
def list_changes(
    sysparm_query: str = "",
    sysparm_fields: str | None = None,
    sysparm_limit: int = 1000,
    store: ChangeStore = StoreDep,
    user: str = UserDep,
) -> dict[str, Any]:
    filters, order, descending = parse_query(sysparm_query)
    records = store.query(filters, max(0, min(sysparm_limit, 10000)), order, descending)
    return {"result": [_fields(r, sysparm_fields) for r in records]}


@router.post(TABLE, status_code=201)
async def create_change(request: Request, store: ChangeStore = StoreDep, user: str = UserDep) -> Any:
    body = await _json(request)
    return body if isinstance(body, JSONResponse) else {"result": store.create(body, user)}


@router.get(TABLE + "/{sys_id}")
def get_change(
    sys_id: str, sysparm_fields: str | None = None, store: ChangeStore = StoreDep, user: str = UserDep
) -> Any:
    record = store.get(sys_id)
    return _failure(404, **NOT_FOUND) if record is None else {"result": _fields(record, sysparm_fields)}


@router.patch(TABLE + "/{sys_id}")
async def update_change(sys_id: str, request: Request, store: ChangeStore = StoreDep, user: str = UserDep) -> Any:
    body = await _json(request)
    if isinstance(body, JSONResponse):
        return body
    record = store.update(sys_id, body, user)
    return _failure(404, **NOT_FOUND) if record is None else {"result": record}


@router.post("/api/release_mgmt/change_request/{sys_id}/{decision}")
async def decide(
    sys_id: str, decision: str, request: Request, store: ChangeStore = StoreDep, user: str = UserDep
) -> Any:
    """An authorizer approves or rejects a change waiting in Authorize (body: {"comment": ...})."""
    if decision not in ("approve", "reject"):
        return _failure(404, "No such action", "use approve or reject")
    body = await _json(request)
    if isinstance(body, JSONResponse):
        return body
    record = store.decide(sys_id, decision == "approve", user, str(body.get("comment", "")))
    return _failure(404, **NOT_FOUND) if record is None else {"result": record}


@router.get(LOCKS)
def list_locks(lock: str | None = None, locks: LockStore = LocksDep, user: str = UserDep) -> Any:
    """Every lock (or ``?lock=NAME`` with its recent history): holder and queue."""
    if lock is None:
        return {"result": locks.status()}
    return {"result": {**locks.status(lock)[0], "history": locks.history(lock)}}


@router.post(LOCKS + "/{action}")
async def lock_action(action: str, request: Request, locks: LockStore = LocksDep, user: str = UserDep) -> Any:
    """A release task acquires (queues for) or releases a lock: {"lock", "dag_id", "run_id", "environment"}."""
    if action not in ("acquire", "release"):
        return _failure(404, "No such action", "use acquire or release")
    if user != SERVICE_USER:
        return _failure(403, "Not a release task", "locks are taken and given back by release tasks only")
    body = await _json(request)
    if isinstance(body, JSONResponse):
        return body
    lock, holder = _lock_request(body)
    if action == "acquire":  # database work off the event loop: the API server serves others meanwhile
        return {"result": await run_in_threadpool(locks.acquire, lock, holder)}
    why = str(body.get("why") or "released")
    return {"result": await run_in_threadpool(locks.release, lock, holder, why)}


def _lock_request(body: dict[str, Any]) -> tuple[str, Holder]:
    fields = {k: body.get(k) for k in ("lock", "dag_id", "run_id", "environment")}
    missing = sorted(k for k, v in fields.items() if not isinstance(v, str) or not v)
    if missing:
        raise ChangeRuleError("Invalid lock request", f"missing or empty: {', '.join(missing)}", 400)
    if not LOCK_NAME.match(str(fields["lock"])):
        raise ChangeRuleError(
            "Invalid lock name", "a name, or release/environment, in lowercase letters, digits, '_' or '-'", 400
        )
    return str(fields["lock"]), Holder(str(fields["dag_id"]), str(fields["run_id"]), str(fields["environment"]))


def create_app(store: ChangeStore | None, authenticate: Callable[[Request], str]) -> FastAPI:
    """The API over ``store``; ``authenticate(request)`` returns the caller's user name or raises
    an HTTPException (401/403) for anonymous or unknown callers."""
    app = FastAPI(title="release_mgmt change service", description=__doc__)
    app.state.store = store
    app.state.store_url = default_store_url
    app.state.locks = None
    app.state.run_state = any_run_is_live
    app.state.authenticate = authenticate
    app.add_exception_handler(ChangeRuleError, _rule_error)  # type: ignore[arg-type]
    app.include_router(router)
    return app


async def _rule_error(request: Request, exc: ChangeRuleError) -> JSONResponse:
    return _failure(exc.status, str(exc), exc.detail)


async def _json(request: Request) -> Any:
    try:
        body = await request.json() if await request.body() else {}
    except ValueError:
        return _failure(400, "Exception while reading request", "the body is not valid JSON")
    if not isinstance(body, dict):
        return _failure(400, "Exception while reading request", "the body must be a JSON object")
    return body


def basic_auth(users: dict[str, str]) -> Callable[[Request], str]:
    """An authenticator for running the service on its own: HTTP Basic against ``users`` (name: password)."""

    def authenticate(request: Request) -> str:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                name, password = "", ""
            if name in users and hmac.compare_digest(users[name], password):
                return name
        raise HTTPException(401, detail="User Not Authenticated", headers={"WWW-Authenticate": "Basic"})

    return authenticate


def airflow_app() -> FastAPI:
    """The service as Airflow's API server mounts it (plugin ``fastapi_apps``): callers authenticate
    with Airflow itself (a Bearer token from ``/auth/token``, or the UI's session), anonymous calls
    are refused, and the database is ``$RELEASE_MGMT_CHANGE_DB`` (any SQLAlchemy URL) or a SQLite
    file in AIRFLOW_HOME."""
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    from release_mgmt.change_service.service_token import check_token

    async def airflow_user(request: Request) -> str:
        """A release task's service token, or an Airflow user's Bearer token; anything else is refused."""
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        if not token:
            raise HTTPException(401, detail="User Not Authenticated")
        if service_user := check_token(token):
            return service_user
        user = await resolve_user_from_token(token)
        return str(user.get_name())

    app = create_app(None, _refuse)
    app.state.store_url = default_store_url
    app.state.run_state = airflow_run_state
    app.dependency_overrides[_user] = airflow_user
    return app


def airflow_run_state(dag_id: str, run_id: str) -> str | None:
    """A run's state in Airflow's database (the API server can read it): tells live lock holders from dead."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        state = session.scalar(select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    return None if state is None else str(getattr(state, "value", state))


def default_store_url() -> str:
    """The change database: $RELEASE_MGMT_CHANGE_DB, else SQLite in AIRFLOW_HOME."""
    import os
    from pathlib import Path

    if url := os.environ.get("RELEASE_MGMT_CHANGE_DB"):
        return url
    from airflow.configuration import AIRFLOW_HOME

    return f"sqlite:///{Path(AIRFLOW_HOME) / 'release_mgmt_changes.db'}"


def _refuse(request: Request) -> str:
    raise HTTPException(401, detail="User Not Authenticated")
