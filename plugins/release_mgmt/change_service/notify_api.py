"""The notification outbox's routes (``/api/release_mgmt/notifications``): a release task hands over the messages
of an event (each keyed, so a retry hands them over harmlessly); readers of a release see its ledger, how each
message went. The process's sender (notify/sender.py) delivers them."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from release_mgmt.change_service.contract import NOTIFICATIONS
from release_mgmt.change_service.fields import ChangeRuleError, check_text
from release_mgmt.change_service.outbox import FIELDS, LIMITS, TEXTS, OutboxStore
from release_mgmt.change_service.permissions import Caller
from release_mgmt.change_service.web import CallerDep, opened_on_first_use, read_json
from release_mgmt.notify.sender import sender_for

router = APIRouter()
log = logging.getLogger(__name__)
#: messages one call may hand over (one event's recipients and channels)
MAX_MESSAGES = 100


def _outbox(request: Request) -> OutboxStore:
    outbox = opened_on_first_use(request, "outbox", OutboxStore)
    if getattr(request.app.state, "notify_sender", None) is None:
        request.app.state.notify_sender = sender_for(outbox)
        request.app.state.notify_sender.nudge()  # messages a restarted process left behind
    return outbox


OutboxDep = Depends(_outbox)


@router.post(NOTIFICATIONS)
async def queue(request: Request, outbox: OutboxStore = OutboxDep, caller: Caller = CallerDep) -> Any:
    """{"messages": [{key, event, channel, kind, connection, format, recipient, address, subject, text, html,
    payload}]} from a release task, for its own run: each "queued" or "duplicate" (its key was handed over
    before)."""
    task = caller.task
    if task is None:
        raise ChangeRuleError("Not a release task", "notifications are handed over by release tasks")
    body = await read_json(request)
    if isinstance(body, JSONResponse):
        raise ChangeRuleError("Exception while reading request", "the body must be a JSON object", 400)
    messages = body.get("messages")
    if not isinstance(messages, list) or not 0 < len(messages) <= MAX_MESSAGES:
        raise ChangeRuleError("Invalid messages", f"messages must be a list of 1 to {MAX_MESSAGES} messages", 400)
    checked = [_checked(m, i) for i, m in enumerate(messages)]
    answers = await run_in_threadpool(outbox.enqueue, task.dag_id, task.run_id, task.task_id, checked)
    request.app.state.notify_sender.nudge()
    return {"result": [{"key": m["key"], "status": a} for m, a in zip(checked, answers, strict=True)]}


@router.get(NOTIFICATIONS)
async def ledger(
    dag_id: str, run_id: str | None = None, outbox: OutboxStore = OutboxDep, caller: Caller = CallerDep
) -> Any:
    """How each message of a release (one run's, with ``run_id``) went: status, attempts, error; no bodies."""
    if not caller.may_read_release(dag_id):
        raise ChangeRuleError("Not allowed", f"you may not read release {dag_id}", 403)
    return {"result": await run_in_threadpool(outbox.ledger, dag_id, run_id)}


def _checked(message: Any, index: int) -> dict[str, str]:
    if not isinstance(message, dict):
        raise ChangeRuleError("Invalid message", f"messages[{index}] must be an object", 400)
    checked = {
        name: check_text(f"messages[{index}].{name}", message.get(name, ""), LIMITS.get(name, 300))
        for name in (*FIELDS, *TEXTS)
    }
    if len(checked["key"]) != 64 or not all(c in "0123456789abcdef" for c in checked["key"]):
        raise ChangeRuleError("Invalid message", f"messages[{index}].key must be a SHA-256 in hex", 400)
    if checked["kind"] not in ("email", "webhook") or not checked["connection"]:
        raise ChangeRuleError("Invalid message", f"messages[{index}] needs kind email or webhook and a connection", 400)
    return checked


class WakeSender:
    """ASGI middleware: the first request a service process serves starts its notification sender, so messages a
    restarted (or killed) process left in the outbox go out without waiting for the next hand-over."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.woken = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not self.woken and scope["type"] == "http":
            self.woken = True
            try:
                await run_in_threadpool(_outbox, Request(scope))
            except Exception as exc:  # noqa: BLE001 - the request itself is served regardless
                self.woken = False
                log.warning("the notification sender could not start yet: %s", exc)
        await self.app(scope, receive, send)
