"""The change record's fields as the built-in service guards them: which a create or an update may write,
what a stored text and a state value must look like, and the state model's transitions (rules/change.py)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from release_mgmt.errors import ReleaseMgmtError
from release_mgmt.rules.change import AUTHORIZE, CANCELED, CLOSED, FLOWS, ChangeState

#: the stored values and their labels (the state model itself is rules/change.py)
STATES = {int(s): s.label for s in ChangeState}
#: fields a lifecycle update (PATCH) may write
LIFECYCLE = (
    "short_description",
    "description",
    "state",
    "start_date",
    "end_date",
    "work_start",
    "work_end",
    "implementation_plan",
    "backout_plan",
    "test_plan",
    "close_code",
    "close_notes",
    "justification",
    "risk",
    "impact",
)
#: fields only a create may write: what the change is, and for which release run
AT_CREATION = (
    "type",
    "correlation_id",
    "cmdb_ci",
    "assignment_group",
    "u_airflow_dag_id",
    "u_airflow_run_id",
    "u_requested_by",
    "requested_by",
    "u_authorizers",
    "u_min_authorizations",
)
WRITABLE = LIFECYCLE + AT_CREATION


class ChangeRuleError(ReleaseMgmtError):
    """A write the change's state model or fields do not allow (the Table API answers 403 or 400)."""

    def __init__(self, message: str, detail: str = "", status: int = 403) -> None:
        self.status = status
        self.detail = detail
        super().__init__(message)


def check_text(name: str, value: Any, limit: int | None = None) -> str:
    """``value`` as a stored text: a single value (no list, object), no NUL byte, within the column's length."""
    if isinstance(value, dict | list):
        raise ChangeRuleError("Invalid value", f"{name} must be a single value, not a list or object", 400)
    text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    if "\x00" in text:
        raise ChangeRuleError("Invalid value", f"{name} contains a NUL character", 400)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: JSON may escape one, no database can store it
        raise ChangeRuleError("Invalid value", f"{name} contains a character that is not valid Unicode", 400) from None
    if limit is not None and len(text) > limit:
        raise ChangeRuleError("Invalid value", f"{name} is at most {limit} characters, not {len(text)}", 400)
    return text


def check_state(value: Any) -> int:
    """A stored state value (-5 ... 4) given as a number or its digits; labels, null and lists are refused."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ChangeRuleError("Invalid state", f"state must be one of {sorted(STATES)}, not {value!r}", 400)
    text = str(value).strip()
    if not re.fullmatch(r"-?[0-9]{1,3}", text) or int(text) not in STATES:
        raise ChangeRuleError(
            "Invalid state", f"state must be a stored value ({', '.join(map(str, sorted(STATES)))}), not {text!r}", 400
        )
    return int(text)


def check_transition(change: Any, target: int, values: Mapping[str, Any]) -> None:
    """The state model: one step along the change type's flow, or cancel before closing."""
    current = change.state
    if target == current:
        return
    if target == CANCELED and current not in (CLOSED, CANCELED):
        return
    if target not in FLOWS[change.type].get(ChangeState(current), set()):
        how = " (its approval records decide)" if current == AUTHORIZE else ""
        raise ChangeRuleError(
            "Operation against file 'change_request' was aborted by Business Rule 'State model'",
            f"{change.number} ({change.type}) cannot move from {STATES[current]} to {STATES[target]}{how}",
        )
    if target == CLOSED and not (values.get("close_code") or change.close_code):
        raise ChangeRuleError("Close code required", f"closing {change.number} needs close_code and close_notes")
