"""A change request's life, defined once: its states (ServiceNow's stored values, never labels), the flow each
change type may take, the path a release takes to authorization, what counts as authorized or stopped, the
run's idempotency key and the close code. The built-in service, the ServiceNow adapter, the operators and the
trigger all read it from here."""

from __future__ import annotations

import hashlib
from enum import IntEnum
from typing import Any


class ChangeState(IntEnum):
    """``change_request.state`` as stored."""

    NEW = -5
    ASSESS = -4
    AUTHORIZE = -3
    SCHEDULED = -2
    IMPLEMENT = -1
    REVIEW = 0
    CLOSED = 3
    CANCELED = 4

    @property
    def label(self) -> str:
        """The display label: New, Assess, ..."""
        return self.name.capitalize()

    @classmethod
    def of(cls, record: Any) -> ChangeState:
        """The state of a record (a mapping with ``state``) or of a stored value; ValueError for anything else."""
        value = record.get("state") if isinstance(record, dict) else record
        return cls(int(str(value)))


NEW, ASSESS, AUTHORIZE, SCHEDULED, IMPLEMENT, REVIEW, CLOSED, CANCELED = tuple(ChangeState)
#: the states in which a release may deploy
AUTHORIZED = frozenset({SCHEDULED, IMPLEMENT})
#: the states that end a change without (further) deployment
STOPPED = frozenset({CLOSED, CANCELED})
#: where a change may go from each state, per type (cancel is allowed until closed). Nobody moves a change
#: out of Authorize by writing its state: its approval records do.
FLOWS: dict[str, dict[ChangeState, set[ChangeState]]] = {
    "normal": {
        NEW: {ASSESS},
        ASSESS: {AUTHORIZE},
        AUTHORIZE: set(),
        SCHEDULED: {IMPLEMENT},
        IMPLEMENT: {REVIEW},
        REVIEW: {CLOSED},
    },
    "standard": {NEW: {SCHEDULED, IMPLEMENT}, SCHEDULED: {IMPLEMENT}, IMPLEMENT: {REVIEW}, REVIEW: {CLOSED}},
    "emergency": {NEW: {AUTHORIZE}, AUTHORIZE: set(), SCHEDULED: {IMPLEMENT}, IMPLEMENT: {REVIEW}, REVIEW: {CLOSED}},
}
#: the states a release walks its change through, per type, from New until it waits for (or skips) authorization
TO_AUTHORIZATION: dict[str, tuple[ChangeState, ...]] = {
    "normal": (ASSESS, AUTHORIZE),
    "emergency": (AUTHORIZE,),
    "standard": (SCHEDULED,),
}
CLOSE_CODES = ("successful", "successful_issues", "unsuccessful")


def next_on_the_way(change_type: str, current: ChangeState) -> list[ChangeState]:
    """The transitions that bring a change of ``change_type`` from ``current`` to where it waits for (or skips)
    authorization; empty when it is there or past it."""
    path = TO_AUTHORIZATION[change_type]
    if current == NEW:
        return list(path)
    if current == ASSESS and AUTHORIZE in path:
        return [AUTHORIZE]
    return []


def correlation_id(release: str, environment: str, run_id: str) -> str:
    """The same for every try of this run and environment (the change's idempotency key, at most 100 chars)."""
    key = f"release_mgmt:{release}:{environment}:{run_id}"
    return key if len(key) <= 100 else f"{key[:59]}:{hashlib.sha256(key.encode()).hexdigest()[:40]}"


def close_code(environment_status: str, retried: bool) -> str:
    """``successful`` for an environment that succeeded at the first try of every check, ``successful_issues``
    when a check passed only after a retry, ``unsuccessful`` otherwise."""
    if environment_status != "succeeded":
        return "unsuccessful"
    return "successful_issues" if retried else "successful"
