"""How a change is authorized: pure rules over its approval records (no database, no HTTP).

A change that needs authorization gets one approval record per eligible authorizer: the users the
definition names (``change.authorizers``, groups expanded), minus the requester and the run's
triggering user. An authorizer answers their own record once. ``min_authorizations`` approvals
authorize the change; one reject (with a comment) refuses it. Everyone else -- another user, the
requester, a second answer -- is refused with the reason.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

REQUESTED, APPROVED, REJECTED, NOT_REQUIRED = "requested", "approved", "rejected", "not_required"
MAX_AUTHORIZERS = 200


def split_names(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``: the stored authorizer list."""
    return [n.strip() for n in text.split(",") if n.strip()]


def eligible(authorizers: str, excluded: Collection[str]) -> list[str]:
    """The authorizers who may decide, sorted, without the excluded (requester, triggerer)."""
    return sorted(set(split_names(authorizers)) - set(excluded))[:MAX_AUTHORIZERS]


def parse_minimum(value: str) -> int:
    """``u_min_authorizations``: a whole number from 1 to 20 (ValueError otherwise)."""
    text = str(value).strip() or "1"
    if not text.isdigit() or not 1 <= int(text) <= 20:
        raise ValueError(f"u_min_authorizations must be 1 to 20, not {text!r}")
    return int(text)


@dataclass(frozen=True)
class Decision:
    """What an answer does: refused (``status``, ``message``, ``detail``), or the record's new ``answer``,
    the change's new ``change_approval`` (requested, approved, rejected) and the work note saying so."""

    refused: bool
    message: str = ""
    detail: str = ""
    status: int = 403
    answer: str = ""
    change_approval: str = REQUESTED
    note: str = ""


def _refuse(message: str, detail: str, status: int = 403) -> Decision:
    return Decision(True, message, detail, status)


def judge(  # noqa: PLR0911 - one return per rule, in the order they apply
    *,
    number: str,
    state_is_authorize: bool,
    requests: Mapping[str, str],
    user: str,
    approve: bool,
    comment: str,
    excluded: Collection[str],
    minimum: int,
) -> Decision:
    """The meaning of ``user``'s answer to change ``number`` whose approval records are ``requests``
    (approver -> state)."""
    if user in excluded:
        return _refuse("Not an eligible authorizer", f"{user} requested or triggered {number} and cannot authorize it")
    if user not in requests:
        return _refuse("Not an eligible authorizer", f"{user} is not among the authorizers of {number}")
    if not state_is_authorize:
        return _refuse("Not awaiting authorization", f"{number} is not waiting in Authorize", 409)
    if requests[user] != REQUESTED:
        return _refuse("Already answered", f"{user} answered {number} already ({requests[user]})", 409)
    if not approve:
        if not comment:
            return _refuse("Comment required", "a reject needs a comment saying why", 400)
        note = f"Change rejected by {user}: {comment}"
        return Decision(False, answer=REJECTED, change_approval=REJECTED, note=note)
    approved = sorted({u for u, s in requests.items() if s == APPROVED} | {user})
    said = f": {comment}" if comment else ""
    if len(approved) >= minimum:
        note = f"Change approved by {user}{said}. Authorized by {', '.join(approved)} ({len(approved)} of {minimum})."
        return Decision(False, answer=APPROVED, change_approval=APPROVED, note=note)
    note = f"Approval by {user}{said}. {len(approved)} of {minimum} authorization(s); still waiting."
    return Decision(False, answer=APPROVED, change_approval=REQUESTED, note=note)
