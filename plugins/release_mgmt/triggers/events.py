"""The payloads the triggers send back to their operators, as TypedDicts (plain JSON values only)."""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class ChangeDecided(TypedDict):
    """The change left Authorize: authorized (Scheduled, Implement) or stopped (Closed, Canceled)."""

    status: Literal["decided"]
    state: int
    approval: str
    number: str


class ChangeTimedOut(TypedDict):
    """The deadline passed while the change still waited (or while the change system did not answer: ``error``
    says why, '' when it answered)."""

    status: Literal["timeout"]
    state: int
    number: str
    error: str


class ChangeError(TypedDict):
    """The change system answered with an error the retries did not cure."""

    status: Literal["error"]
    message: str


ChangeEvent = ChangeDecided | ChangeTimedOut | ChangeError


class LockGranted(TypedDict):
    """The run holds the lock now; ``answer`` is the service's answer (holder, queue)."""

    status: Literal["granted"]
    answer: dict[str, Any]


class LockTimedOut(TypedDict):
    """The deadline passed in line; ``holder`` is who held the lock last, ``error`` the last service error."""

    status: Literal["timeout"]
    holder: dict[str, Any] | None
    error: str


class LockWaitingLong(TypedDict):
    """The run has waited ``notice_seconds`` in line (told once); it goes on waiting until ``deadline``."""

    status: Literal["waiting_long"]
    holder: dict[str, Any] | None
    deadline: float


LockEvent = LockGranted | LockTimedOut | LockWaitingLong
