"""The client of the built-in service's environment locks (``change_service/locks.py`` behind
``/api/release_mgmt/locks``), as release tasks and triggers call it: with the service token, retried
with backoff. Acquire and release are idempotent, so a retry after a lost answer is harmless."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from release_mgmt.change_service.locks import API_PATH as LOCKS
from release_mgmt.change_service.locks import Holder
from release_mgmt.hooks.servicenow import ServiceNowChangeHook


class LockClient:
    """Acquire and release calls to the built-in service (retried with backoff; both are idempotent)."""

    def __init__(self, hook: ServiceNowChangeHook | None = None) -> None:
        self.hook = hook or ServiceNowChangeHook.builtin_service(timeout=30, retries=4)

    def acquire(self, lock: str, holder: Holder) -> dict[str, Any]:
        result: dict[str, Any] = self.hook.call("POST", f"{LOCKS}/acquire", _body(lock, holder))
        return result

    def release(self, lock: str, holder: Holder, why: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.hook.call("POST", f"{LOCKS}/release", {**_body(lock, holder), "why": why})
        return result


def holder_of(context: Mapping[str, Any], environment: str) -> Holder:
    """The holder a release task acts as: its run, in ``environment``."""
    return Holder(context["ti"].dag_id, context["run_id"], environment)


def _body(lock: str, holder: Holder) -> dict[str, str]:
    return {"lock": lock, "dag_id": holder.dag_id, "run_id": holder.run_id, "environment": holder.environment}


def describe(request: Mapping[str, Any] | None) -> str:
    """``release_x run R (prod) since T`` for a holder or waiter; ``nobody`` for None."""
    if not request:
        return "nobody"
    since = request.get("granted_on") or request.get("requested_on") or ""
    return f"{request['dag_id']} run {request['run_id']} ({request['environment']}) since {since}"
