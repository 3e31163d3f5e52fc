"""ServiceNow's Change Management API (``/api/sn_chg_rest/change``), its core paths: list and read changes,
open a normal, emergency or standard change, update one, and ask which states it may move to next.

As on ServiceNow, every field of a change comes as ``{"display_value": ..., "value": ...}``. The records,
rules and permissions are the Table API's (table_api.py): this is another door to the same changes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from release_mgmt.change_service import permissions as perms
from release_mgmt.change_service import table_api, tables
from release_mgmt.change_service.fields import STATES
from release_mgmt.change_service.permissions import Caller
from release_mgmt.change_service.store import ChangeStore
from release_mgmt.change_service.tables import Shown
from release_mgmt.change_service.web import CallerDep, StoreDep, failure, read_json
from release_mgmt.rules.change import AUTHORIZE, CANCELED, CLOSED, FLOWS, ChangeState

router = APIRouter()
API = perms.CHANGE_API


def _pairs(request: Request) -> Shown:
    """Every field as a display value/value pair, whatever the request asks."""
    return replace(table_api.shown(request), display="all")


def _shown(request: Request, record: dict[str, str]) -> dict[str, Any]:
    return tables.show(tables.CHANGES, record, _pairs(request))


@router.get(API)
def list_changes(request: Request, store: ChangeStore = StoreDep, caller: Caller = CallerDep) -> Any:
    return table_api.list_records(request, tables.CHANGES, store, caller, _pairs(request))


@router.get(API + "/{sys_id}")
def get_change(sys_id: str, request: Request, store: ChangeStore = StoreDep, caller: Caller = CallerDep) -> Any:
    record = table_api.readable(caller, store.get(sys_id))
    return failure(404, **table_api.NOT_FOUND) if record is None else {"result": _shown(request, record)}


@router.get(API + "/{sys_id}/nextstates")
def next_states(sys_id: str, store: ChangeStore = StoreDep, caller: Caller = CallerDep) -> Any:
    """The states the change may move to now: along its type's flow, or Canceled before it closes (a change in
    Authorize moves on through its approval records, never by an update)."""
    record = table_api.readable(caller, store.get(sys_id))
    if record is None:
        return failure(404, **table_api.NOT_FOUND)
    current = ChangeState(int(record["state"]))
    following = sorted(FLOWS[record["type"]].get(current, set()))
    if current not in (CLOSED, CANCELED):
        following.append(CANCELED)
    available = [str(int(s)) for s in following]
    return {
        "result": {
            "available_states": available,
            "state_label": {s: STATES[int(s)] for s in available},
            "state_transitions": [
                {"from_state": str(int(current)), "to_state": s, "automatic": current == AUTHORIZE} for s in available
            ],
        }
    }


async def _create(kind: str, request: Request, store: ChangeStore, caller: Caller) -> Any:
    body = await read_json(request)
    if isinstance(body, JSONResponse):
        return body
    made = table_api.create(store, caller, {**body, "type": kind})
    if isinstance(made, JSONResponse):
        return made
    response = JSONResponse({"result": _shown(request, made)})
    response.headers["Location"] = table_api.location(request, made["sys_id"])
    return response


@router.post(API + "/normal")
async def create_normal(request: Request, store: ChangeStore = StoreDep, caller: Caller = CallerDep) -> Any:
    return await _create("normal", request, store, caller)


@router.post(API + "/emergency")
async def create_emergency(request: Request, store: ChangeStore = StoreDep, caller: Caller = CallerDep) -> Any:
    return await _create("emergency", request, store, caller)


@router.post(API + "/standard/{template}")
async def create_standard(
    template: str, request: Request, store: ChangeStore = StoreDep, caller: Caller = CallerDep
) -> Any:
    """A standard (pre-approved) change; the template's id is accepted, its fields are not applied (the built-in
    service keeps no standard change catalogue)."""
    return await _create("standard", request, store, caller)


@router.patch(API + "/{sys_id}")
async def update_change(
    sys_id: str, request: Request, store: ChangeStore = StoreDep, caller: Caller = CallerDep
) -> Any:
    body = await read_json(request)
    if isinstance(body, JSONResponse):
        return body
    updated = table_api.update(sys_id, store, caller, body)
    return updated if isinstance(updated, JSONResponse) else {"result": _shown(request, updated)}
