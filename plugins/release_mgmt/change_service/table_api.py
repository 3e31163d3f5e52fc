"""ServiceNow's Table API for ``change_request``, ``sysapproval_approver`` and ``sys_journal_field`` (work notes):
the same paths, parameters (``sysparm_query``, ``sysparm_fields``, ``sysparm_limit``, ``sysparm_offset``,
``sysparm_display_value``, ``sysparm_exclude_reference_link``), JSON shapes and headers (``X-Total-Count``,
``Link``, ``Location``) as a ServiceNow instance; docs/SERVICENOW_COMPATIBILITY.md lists each behaviour.

Who may call what is the permission table (permissions.py, enforced by web.enforce); the handlers apply the
row's scope to the record at hand: the release's DAG permission, the task's own run, the authorizer's own
approval record.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from release_mgmt.change_service import permissions as perms
from release_mgmt.change_service import tables
from release_mgmt.change_service.permissions import Caller
from release_mgmt.change_service.query import Query, Term, parse_query
from release_mgmt.change_service.store import ChangeRuleError, ChangeStore, check_text
from release_mgmt.change_service.tables import Shown, Table
from release_mgmt.change_service.web import CallerDep, StoreDep, failure, read_json

NOT_FOUND = {"message": "No Record found", "detail": "Record doesn't exist or ACL restricts the record retrieval"}
MAX_LIMIT = 10_000

router = APIRouter()


def readable(caller: Caller, record: dict[str, str] | None) -> dict[str, str] | None:
    return record if record is not None and caller.may_read_release(record.get("u_airflow_dag_id", "")) else None


def _number(name: str, value: str | None, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    text = value.strip()
    if not re.fullmatch(r"[0-9]{1,12}", text) or not low <= int(text) <= high:
        raise ChangeRuleError("Invalid parameter", f"{name} must be a whole number from {low} to {high}", 400)
    return int(text)


def shown(request: Request) -> Shown:
    """How the caller asked records to be shown (``sysparm_display_value``, ``sysparm_exclude_reference_link``,
    ``sysparm_fields``); links start at this service's own URL."""
    params = request.query_params
    return Shown.of(
        params.get("sysparm_display_value", "false"),
        params.get("sysparm_exclude_reference_link", "false"),
        params.get("sysparm_fields"),
        service_url(request),
    )


def service_url(request: Request) -> str:
    """Where this service answers, its mount path included (Starlette's ``base_url`` is the outermost app's:
    inside Airflow it would lose ``/change-service``)."""
    return f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}".rstrip("/")


def with_lookups(store: ChangeStore, table: Table, records: list[dict[str, str]], how: Shown) -> Shown:
    """An approval's ``sysapproval`` is shown by the change's number."""
    if table is not tables.APPROVALS or how.display == "false":
        return how
    return replace(how, lookups={"sysapproval": tables.numbers(store.engine, (r["sysapproval"] for r in records))})


def list_records(request: Request, table: Table, store: ChangeStore, caller: Caller, how: Shown | None = None) -> Any:
    """A page of records: ``result``, ``X-Total-Count`` (all matches the caller may read) and ``Link``."""
    params = request.query_params
    query = parse_query(params.get("sysparm_query", ""))
    limit = _number("sysparm_limit", params.get("sysparm_limit"), MAX_LIMIT, 1, MAX_LIMIT)
    offset = _number("sysparm_offset", params.get("sysparm_offset"), 0, 0, 10**9)
    releases = tables.readable_releases(store.engine, caller.release_filter())
    page = tables.read_page(store.engine, table, query, offset=offset, limit=limit, releases=releases)
    how = with_lookups(store, table, page.records, how or shown(request))
    response = JSONResponse({"result": [tables.show(table, r, how) for r in page.records]})
    response.headers["X-Total-Count"] = str(page.total)
    response.headers["Link"] = links(request, offset, limit, page.total)
    return response


def links(request: Request, offset: int, limit: int, total: int) -> str:
    """ServiceNow's paging links: first, prev (when not first), next (when more), last."""

    def at(where: int) -> str:
        params = {**request.query_params, "sysparm_offset": str(where), "sysparm_limit": str(limit)}
        return f"<{request.url.replace(query=urlencode(params))}>"

    last = max(0, (total - 1) // limit * limit)
    parts = [f'{at(0)};rel="first"']
    if offset > 0:
        parts.append(f'{at(max(0, offset - limit))};rel="prev"')
    if offset + limit < total:
        parts.append(f'{at(offset + limit)};rel="next"')
    parts.append(f'{at(last)};rel="last"')
    return ",".join(parts)


def shown_one(request: Request, table: Table, record: dict[str, str], store: ChangeStore) -> dict[str, Any]:
    return tables.show(table, record, with_lookups(store, table, [record], shown(request)))


def one(request: Request, table: Table, record: dict[str, str], store: ChangeStore, status: int = 200) -> JSONResponse:
    return JSONResponse({"result": shown_one(request, table, record, store)}, status_code=status)


# -- change_request ---------------------------------------------------------------------------------------------


@router.get(perms.CHANGES)
def list_changes(request: Request, store: ChangeStore = StoreDep, caller: Caller = CallerDep) -> Any:
    return list_records(request, tables.CHANGES, store, caller)


@router.post(perms.CHANGES, status_code=201)
async def create_change(request: Request, store: ChangeStore = StoreDep, caller: Caller = CallerDep) -> Any:
    body = await read_json(request)
    if isinstance(body, JSONResponse):
        return body
    record = create(store, caller, body)
    if isinstance(record, JSONResponse):
        return record
    response = one(request, tables.CHANGES, record, store, 201)
    response.headers["Location"] = location(request, record["sys_id"])
    return response


def location(request: Request, sys_id: str) -> str:
    return f"{service_url(request)}{perms.CHANGES}/{sys_id}"


def create(store: ChangeStore, caller: Caller, body: dict[str, Any]) -> dict[str, str] | JSONResponse:
    """A release task opens changes for its own run only."""
    if caller.task is not None:
        for name, own in (("u_airflow_dag_id", caller.task.dag_id), ("u_airflow_run_id", caller.task.run_id)):
            if body.setdefault(name, own) != own:
                return failure(403, "Not this task's run", f"{name} must be {own!r}, the run the token is for")
    return store.create(body, caller.name)


@router.get(perms.CHANGES + "/{sys_id}")
def get_change(sys_id: str, request: Request, store: ChangeStore = StoreDep, caller: Caller = CallerDep) -> Any:
    record = readable(caller, store.get(sys_id))
    return failure(404, **NOT_FOUND) if record is None else one(request, tables.CHANGES, record, store)


@router.patch(perms.CHANGES + "/{sys_id}")
@router.put(perms.CHANGES + "/{sys_id}")
async def update_change(
    sys_id: str, request: Request, store: ChangeStore = StoreDep, caller: Caller = CallerDep
) -> Any:
    """PATCH, and PUT as ServiceNow serves it: the fields sent are written, the others kept."""
    body = await read_json(request)
    if isinstance(body, JSONResponse):
        return body
    updated = update(sys_id, store, caller, body)
    return updated if isinstance(updated, JSONResponse) else one(request, tables.CHANGES, updated, store)


def update(sys_id: str, store: ChangeStore, caller: Caller, body: dict[str, Any]) -> dict[str, str] | JSONResponse:
    """A release task moves its own run's change; anyone else finds nothing they may change."""
    record = readable(caller, store.get(sys_id))
    if record is None:
        return failure(404, **NOT_FOUND)
    if not caller.owns_run(record["u_airflow_dag_id"], record["u_airflow_run_id"]):
        return failure(403, "Not this task's run", f"{record['number']} belongs to another release run")
    updated = store.update(sys_id, body, caller.name)
    return failure(404, **NOT_FOUND) if updated is None else updated


@router.delete(perms.CHANGES + "/{sys_id}", status_code=204, response_class=Response, response_model=None)
def delete_change(sys_id: str, store: ChangeStore = StoreDep, caller: Caller = CallerDep) -> Any:
    """An admin deletes a change that is still New; anything later is kept (cancel it instead)."""
    if readable(caller, store.get(sys_id)) is None or store.delete(sys_id) is None:
        return failure(404, **NOT_FOUND)
    return Response(status_code=204)


# -- sysapproval_approver and sys_journal_field ----------------------------------------------------------------


@router.get(perms.APPROVALS)
def list_approvals(request: Request, store: ChangeStore = StoreDep, caller: Caller = CallerDep) -> Any:
    """Approval records, e.g. ``sysparm_query=sysapproval=<change sys_id>``; only of changes the caller may read."""
    return list_records(request, tables.APPROVALS, store, caller)


@router.get(perms.APPROVALS + "/{sys_id}")
def get_approval(sys_id: str, request: Request, store: ChangeStore = StoreDep, caller: Caller = CallerDep) -> Any:
    found = approval_and_change(store, caller, sys_id)
    return failure(404, **NOT_FOUND) if found is None else one(request, tables.APPROVALS, found[0], store)


def approval_and_change(
    store: ChangeStore, caller: Caller, sys_id: str
) -> tuple[dict[str, str], dict[str, str]] | None:
    """An approval record and its change, when the caller may read that change."""
    rows = store.approvals(approval_sys_id=sys_id)
    change = readable(caller, store.get(rows[0]["sysapproval"])) if rows else None
    return None if change is None else (rows[0], change)


@router.patch(perms.APPROVALS + "/{sys_id}")
@router.put(perms.APPROVALS + "/{sys_id}")
async def answer_approval(
    sys_id: str, request: Request, store: ChangeStore = StoreDep, caller: Caller = CallerDep
) -> Any:
    """An authorizer answers their own approval record: {"state": "approved"|"rejected", "comments": ...}."""
    body = await read_json(request)
    if isinstance(body, JSONResponse):
        return body
    found = approval_and_change(store, caller, sys_id)
    if found is None:
        return failure(404, **NOT_FOUND)
    record, change = found
    if record["approver"] != caller.name:
        return failure(403, "Not your approval", f"this approval record of {change['number']} is not {caller.name}'s")
    state = body.get("state")
    if state not in ("approved", "rejected"):
        return failure(400, "Invalid approval", 'write {"state": "approved" or "rejected", "comments": ...}')
    decided = decide(request, store, change, caller, yes=state == "approved", why=body.get("comments", ""))
    answered = shown_one(request, tables.APPROVALS, store.approvals(approval_sys_id=sys_id)[0], store)
    return {"result": answered | {"change_state": decided["state"]}}


def decide(request: Request, store: ChangeStore, change: dict[str, str], caller: Caller, *, yes: bool, why: Any) -> Any:
    """The one path of every decision: the caller's own record, the triggering user excluded as Airflow knows it."""
    triggerer = request.app.state.run_triggerer(change["u_airflow_dag_id"], change["u_airflow_run_id"])
    return store.decide(change["sys_id"], yes, caller.name, check_text("comment", why), excluded=[triggerer or ""])


@router.get(perms.JOURNAL)
def list_notes(request: Request, store: ChangeStore = StoreDep, caller: Caller = CallerDep) -> Any:
    """Work notes, e.g. ``sysparm_query=element_id=<change sys_id>^element=work_notes^ORDERBYDESCsys_created_on``."""
    return list_records(request, tables.JOURNAL, store, caller)


@router.get(perms.JOURNAL + "/{sys_id}")
def get_note(sys_id: str, request: Request, store: ChangeStore = StoreDep, caller: Caller = CallerDep) -> Any:
    query = Query([[[Term("sys_id", "=", check_text("sys_id", sys_id, 32))]]])  # never parsed: a ^ stays a ^
    releases = tables.readable_releases(store.engine, caller.release_filter())
    page = tables.read_page(store.engine, tables.JOURNAL, query, offset=0, limit=1, releases=releases)
    return failure(404, **NOT_FOUND) if not page.records else one(request, tables.JOURNAL, page.records[0], store)
