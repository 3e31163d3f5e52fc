"""The client of the built-in service's environment locks (``change_service/locks.py`` behind
``/api/release_mgmt/locks``), as release tasks and triggers call it: with a service token bound to the
calling task, retried with backoff. The service takes the holder (DAG run and environment) from that
token, never from the request. Acquire and release are idempotent, so a retry after a lost answer is
harmless."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from release_mgmt.change_service.locks import API_PATH as LOCKS
from release_mgmt.change_service.locks import Holder
from release_mgmt.change_service.service_token import TaskIdentity
from release_mgmt.hooks.servicenow import ServiceNowChangeHook


class LockClient:
    """Acquire and release calls to the built-in service (retried with backoff; both are idempotent)."""

    def __init__(self, identity: TaskIdentity) -> None:
        """``identity``: the calling task; the service takes the lock's holder from it."""
        self.hook = ServiceNowChangeHook.builtin_service(timeout=30, retries=4, identity=identity)

    def acquire(self, lock: str) -> dict[str, Any]:
        """Queue this task's run for ``lock`` (once) and say whether it holds it now."""
        result: dict[str, Any] = self.hook.call("POST", f"{LOCKS}/acquire", {"lock": lock})
        return result

    def release(self, lock: str, why: str) -> dict[str, Any] | None:
        """Give ``lock`` back, or leave its queue, for this task's run."""
        result: dict[str, Any] | None = self.hook.call("POST", f"{LOCKS}/release", {"lock": lock, "why": why})
        return result


def holder_of(context: Mapping[str, Any], environment: str) -> Holder:
    """The holder a release task acts as: its run, in ``environment``."""
    return Holder(context["ti"].dag_id, context["run_id"], environment)


def describe(request: Mapping[str, Any] | None) -> str:
    """``release_x run R (prod) since T`` for a holder or waiter; ``nobody`` for None."""
    if not request:
        return "nobody"
    since = request.get("granted_on") or request.get("requested_on") or ""
    return f"{request['dag_id']} run {request['run_id']} ({request['environment']}) since {since}"
