"""The environment locks release runs take in turn (``/api/release_mgmt/locks``) and the step fences that keep a
lock held while a step of an ended run may still be running (``/api/release_mgmt/fences``)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from release_mgmt.change_service.contract import FENCES, LOCKS, Holder
from release_mgmt.change_service.fences import Fenced, FenceStore
from release_mgmt.change_service.locks import LockStore
from release_mgmt.change_service.permissions import Caller
from release_mgmt.change_service.store import ChangeRuleError, check_text
from release_mgmt.change_service.web import CallerDep, opened_on_first_use, read_json

LOCK_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,49}(/[a-z][a-z0-9_-]{0,49})?$")
COMPONENT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,99}$")
#: the longest an acquire call waits for its lock before answering (a client's HTTP timeout is longer)
MAX_WAIT_SECONDS = 25
router = APIRouter()


def _fences(request: Request) -> FenceStore:
    return opened_on_first_use(request, "fences", FenceStore)


def _locks(request: Request) -> LockStore:
    fences, run_state = _fences(request), request.app.state.run_state
    return opened_on_first_use(request, "locks", lambda engine: LockStore(engine, run_state, fences))


LocksDep = Depends(_locks)
FencesDep = Depends(_fences)


@router.get(LOCKS)
def list_locks(lock: str | None = None, locks: LockStore = LocksDep, caller: Caller = CallerDep) -> Any:
    """Every lock (or ``?lock=NAME`` with its recent history): holder and queue, of releases the caller may read."""

    def visible(entry: dict[str, Any] | None) -> dict[str, Any] | None:
        return entry if entry and caller.may_read_release(entry["dag_id"]) else None

    def shown(status: dict[str, Any]) -> dict[str, Any]:
        holder = status["holder"]
        return {
            **status,
            "holder": visible(holder) or ({"hidden": True} if holder else None),
            "queue": [visible(q) or {"hidden": True} for q in status["queue"]],
        }

    if lock is None:
        return {"result": [shown(s) for s in locks.status()]}
    history = [h for h in locks.history(lock) if visible(h)]
    return {"result": {**shown(locks.status(lock)[0]), "history": history}}


@router.post(LOCKS + "/acquire")
async def acquire_lock(request: Request, locks: LockStore = LocksDep, caller: Caller = CallerDep) -> Any:
    """A release task queues for (or holds) a lock: {"lock", "wait_seconds"}; the holder is the run its token is
    for. With ``wait_seconds`` (at most 25) the answer comes when the lock is granted or that time has passed:
    a release in this process wakes the waiter at once (checked every 50 ms, no thread held), anything else
    (another API server process, a run that ended) within a second."""
    lock, holder, body = await _lock_request(request, caller)
    wait = body.get("wait_seconds", 0)
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= MAX_WAIT_SECONDS:
        raise ChangeRuleError("Invalid wait", f"wait_seconds must be a number from 0 to {MAX_WAIT_SECONDS}", 400)
    deadline = time.monotonic() + float(wait)
    while True:
        seen = locks.generation
        answer = await run_in_threadpool(locks.acquire, lock, holder)
        if answer["granted"] or time.monotonic() >= deadline:
            return {"result": answer}
        until = min(deadline, time.monotonic() + 1.0)
        while time.monotonic() < until and locks.generation == seen and not await request.is_disconnected():
            await asyncio.sleep(0.05)


@router.post(LOCKS + "/release")
async def release_lock(request: Request, locks: LockStore = LocksDep, caller: Caller = CallerDep) -> Any:
    """A release task gives a lock back (or leaves its queue): {"lock", "why"}."""
    lock, holder, body = await _lock_request(request, caller)
    why = check_text("why", body.get("why") or "released", 300)
    return {"result": await run_in_threadpool(locks.release, lock, holder, why)}


async def _lock_request(request: Request, caller: Caller) -> tuple[str, Holder, dict[str, Any]]:
    body = await read_json(request)
    if isinstance(body, JSONResponse):
        raise ChangeRuleError("Exception while reading request", "the body must be a JSON object", 400)
    lock = body.get("lock")
    if not isinstance(lock, str) or not LOCK_NAME.match(lock):
        raise ChangeRuleError(
            "Invalid lock name", "a name, or release/environment, in lowercase letters, digits, '_' or '-'", 400
        )
    task = _environment_task(caller, "locks are taken by release tasks of an environment, with their token")
    return lock, Holder(task.dag_id, task.run_id, task.environment), body


@router.post(FENCES + "/hold")
async def hold_fence(request: Request, fences: FenceStore = FencesDep, caller: Caller = CallerDep) -> Any:
    """A release task starts or renews its step's fence: {"component", "seconds"}; the task is its token's."""
    who, body = await _fence_request(request, caller)
    seconds = body.get("seconds", 30)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= 300:
        raise ChangeRuleError("Invalid lease", "seconds must be a number above 0 and at most 300", 400)
    return {"result": await run_in_threadpool(fences.hold, who, float(seconds))}


@router.post(FENCES + "/end")
async def end_fence(request: Request, fences: FenceStore = FencesDep, caller: Caller = CallerDep) -> Any:
    """A release task ends its fence once its step's processes are known gone: {"component", "why"}."""
    who, body = await _fence_request(request, caller)
    why = check_text("why", body.get("why") or "step over", 300)
    ended = await run_in_threadpool(fences.end, who, why)
    _locks(request).changed()  # a lock kept for this step's run may be free now
    return {"result": ended}


@router.get(FENCES)
def live_fences(component: str, fences: FenceStore = FencesDep, caller: Caller = CallerDep) -> Any:
    """Live fences of other tasks on ``component`` in the calling task's environment, of any run of its DAG."""
    task = _environment_task(caller)
    live = fences.live(task.dag_id, task.environment, component=component)
    return {"result": [f for f in live if (f["run_id"], f["task_id"]) != (task.run_id, task.task_id)]}


FENCE_HOLDERS = "fences are held by release tasks of an environment, with their token"


def _environment_task(caller: Caller, detail: str = FENCE_HOLDERS) -> Any:
    """The calling release task of an environment: who holds a lock or a fence is who the token says, never
    what the body says."""
    task = caller.task
    if task is None or not task.environment:
        raise ChangeRuleError("Not an environment's release task", detail)
    return task


async def _fence_request(request: Request, caller: Caller) -> tuple[Fenced, dict[str, Any]]:
    body = await read_json(request)
    if isinstance(body, JSONResponse):
        raise ChangeRuleError("Exception while reading request", "the body must be a JSON object", 400)
    task = _environment_task(caller)
    component = body.get("component")
    if not isinstance(component, str) or not COMPONENT_NAME.match(component):
        raise ChangeRuleError("Invalid component", "component must be a component name of the release", 400)
    return Fenced(task.dag_id, task.run_id, task.environment, component, task.task_id), body
