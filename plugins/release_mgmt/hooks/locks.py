"""The client of the built-in service's environment locks (``change_service/locks.py`` behind
``/api/release_mgmt/locks``), as release tasks and triggers call it: with a service token bound to the
calling task, retried with backoff. The service takes the holder (DAG run and environment) from that
token, never from the request. Acquire and release are idempotent, so a retry after a lost answer is
harmless."""

from __future__ import annotations

from typing import Any

from release_mgmt.change_service.contract import FENCES, LOCKS, Holder, describe
from release_mgmt.change_service.service_token import TaskIdentity
from release_mgmt.hooks.servicenow import ServiceNowChangeHook

__all__ = ["LOCKS", "FenceClient", "Holder", "LockClient", "describe"]


class LockClient:
    """Acquire and release calls to the built-in service (retried with backoff; both are idempotent)."""

    def __init__(self, identity: TaskIdentity, **hook_settings: Any) -> None:
        """``identity``: the calling task; the service takes the lock's holder from it."""
        settings = {"timeout": 30, "retries": 4, **hook_settings}
        self.hook = ServiceNowChangeHook.builtin_service(identity=identity, **settings)

    def acquire(self, lock: str) -> dict[str, Any]:
        """Queue this task's run for ``lock`` (once) and say whether it holds it now."""
        result: dict[str, Any] = self.hook.call("POST", f"{LOCKS}/acquire", {"lock": lock})
        return result

    def release(self, lock: str, why: str) -> dict[str, Any] | None:
        """Give ``lock`` back, or leave its queue, for this task's run."""
        result: dict[str, Any] | None = self.hook.call("POST", f"{LOCKS}/release", {"lock": lock, "why": why})
        return result

    async def acquire_async(self, lock: str, wait_seconds: float = 0.0) -> dict[str, Any]:
        """:meth:`acquire` for triggers (aiohttp, no thread); with ``wait_seconds``, the service answers once
        the lock is granted or that time has passed, so a released lock is handed over at once."""
        from release_mgmt.hooks.servicenow_async import request

        body = {"lock": lock, **({"wait_seconds": round(wait_seconds, 3)} if wait_seconds > 0 else {})}
        result: dict[str, Any] = await request(self.hook, "POST", f"{LOCKS}/acquire", body)
        return result

    def ensure_held(self, lock: str) -> tuple[bool, dict[str, Any] | None]:
        """Whether this task's run holds ``lock`` now, taking it when it is free; a run that finds it taken
        leaves the line it just joined (it is not waiting). (held, holder)."""
        answer = self.acquire(lock)
        if not answer["granted"]:
            self.release(lock, "deploy found the lock taken")
        return bool(answer["granted"]), answer.get("holder")


class FenceClient:
    """Step fences (change_service/fences.py) as a release task holds them: one attempt per call, short
    timeouts -- the caller decides what an unanswered call means (a renewal is simply tried again)."""

    def __init__(self, identity: TaskIdentity, **hook_settings: Any) -> None:
        settings = {"timeout": 5, "retries": 0, **hook_settings}
        self.hook = ServiceNowChangeHook.builtin_service(identity=identity, **settings)

    def hold(self, component: str, seconds: float) -> dict[str, Any]:
        """Start or renew this task's fence on ``component`` for ``seconds``."""
        result: dict[str, Any] = self.hook.call("POST", f"{FENCES}/hold", {"component": component, "seconds": seconds})
        return result

    def end(self, component: str, why: str) -> dict[str, Any] | None:
        """End this task's fence: its step's processes are known gone."""
        result: dict[str, Any] | None = self.hook.call("POST", f"{FENCES}/end", {"component": component, "why": why})
        return result

    def others(self, component: str) -> list[dict[str, Any]]:
        """Live fences of other tasks (this run's or another's) on ``component`` in this task's environment."""
        result: list[dict[str, Any]] = self.hook.call("GET", FENCES, params={"component": component})
        return result
