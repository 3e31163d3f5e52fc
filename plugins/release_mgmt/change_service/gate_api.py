"""Approval gate progress (``/api/release_mgmt/gates/progress``): what a retried gate task needs to go on where
its earlier try stopped (gates.py). Only the gate task itself reads and writes its own record, with its token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from release_mgmt.change_service.contract import GATES
from release_mgmt.change_service.gates import GateStore, check_progress
from release_mgmt.change_service.permissions import Caller
from release_mgmt.change_service.store import ChangeRuleError
from release_mgmt.change_service.web import CallerDep, opened_on_first_use, read_json

router = APIRouter()


def _gates(request: Request) -> GateStore:
    return opened_on_first_use(request, "gates", GateStore)


GatesDep = Depends(_gates)


def _task(caller: Caller) -> Any:
    task = caller.task  # whose progress is who the token says, never what the request says
    if task is None or not task.task_id:
        raise ChangeRuleError("Not a release task", "gate progress is read and written by the gate task itself")
    return task


@router.get(GATES + "/progress")
async def read_progress(request: Request, gates: GateStore = GatesDep, caller: Caller = CallerDep) -> Any:
    """The calling gate task's progress, and the answers its earlier tries' requests received."""
    task = _task(caller)
    progress = await run_in_threadpool(gates.load, task.dag_id, task.run_id, task.task_id)
    answers = await run_in_threadpool(request.app.state.gate_answers, task.dag_id, task.run_id, task.task_id)
    return {"result": {"progress": progress, "answers": answers}}


@router.put(GATES + "/progress")
async def write_progress(request: Request, gates: GateStore = GatesDep, caller: Caller = CallerDep) -> Any:
    """Keep the calling gate task's progress: {"deadline", "votes", "refused"}."""
    task = _task(caller)
    body = await read_json(request)
    if isinstance(body, JSONResponse):
        return body
    if problem := check_progress(body):
        raise ChangeRuleError("Invalid gate progress", problem, 400)
    return {"result": await run_in_threadpool(gates.save, task.dag_id, task.run_id, task.task_id, body)}


def no_answers(dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
    """A standalone service cannot see Airflow's database: no earlier answers."""
    return []
