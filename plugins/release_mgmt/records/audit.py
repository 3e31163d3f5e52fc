"""The audit line: one JSON object per event behind a fixed prefix, greppable in task logs.

RELEASE_AUDIT {"event": "deploy.finished", "release": "webshop", ...}
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Protocol

PREFIX = "RELEASE_AUDIT "


def audit_line(
    event: str,
    *,
    release: str,
    run_id: str,
    outcome: str,
    environment: str = "",
    component: str = "",
    version: str = "",
    actor: str = "",
    change: str = "",
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> str:
    """The text of one audit line (keys in a fixed order)."""
    record = {
        "event": event,
        "release": release,
        "run_id": run_id,
        "environment": environment,
        "component": component,
        "version": version,
        "actor": actor,
        "change": change,
        "outcome": outcome,
        "time": (now or datetime.now(UTC)).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "details": details or {},
    }
    return PREFIX + json.dumps(record, separators=(",", ":"), sort_keys=False, default=str)


class InfoLog(Protocol):
    """Anything with ``info`` like a logger: Airflow's task logger or the standard library's."""

    def info(self, event: Any, /, *args: Any) -> Any: ...

    def warning(self, event: Any, /, *args: Any) -> Any: ...


def emit(log: InfoLog, event: str, **fields: Any) -> None:
    """Write one audit line to ``log`` (a task's logger writes it to the task log), then offer the event to the
    configured notifiers (notify/): they never fail or hold up the task."""
    line = audit_line(event, **fields)
    log.info("%s", line)
    from release_mgmt.notify import dispatch

    dispatch(json.loads(line.removeprefix(PREFIX)), log)


def parse_line(line: str) -> dict[str, Any] | None:
    """The record of an audit line found anywhere in ``line``; None when there is none."""
    at = line.find(PREFIX)
    if at < 0:
        return None
    try:  # log renderers may add text after the object (logger name, source location)
        record, _ = json.JSONDecoder().raw_decode(line, at + len(PREFIX))
    except json.JSONDecodeError as exc:
        raise ValueError(f"malformed audit line: {line[:200]!r}") from exc
    if not isinstance(record, dict) or "event" not in record:
        raise ValueError(f"malformed audit line: {line[:200]!r}")
    return record


def records_from_log(content: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Audit records in a task log, however it comes: console lines, Airflow's JSON log lines, or the
    REST API's list of structured records. Lines that carry the prefix but do not parse are returned
    as ``malformed`` instead of being dropped silently."""
    items = content if isinstance(content, list) else str(content or "").splitlines()
    records: list[dict[str, Any]] = []
    malformed: list[str] = []
    for item in items:
        text = _event_text(item)
        if PREFIX not in text:
            continue
        try:
            record = parse_line(text)
        except ValueError:
            malformed.append(text[:300])
            continue
        if record is not None:
            records.append(record)
    return records, malformed


def _event_text(item: Any) -> str:
    """The message of one log item: a dict's ``event``, a JSON log line's ``event``, or the line itself."""
    if isinstance(item, dict):
        return str(item.get("event", ""))
    line = str(item)
    if line.lstrip().startswith("{"):
        try:
            decoded = json.loads(line)
        except ValueError:
            return line
        if isinstance(decoded, dict):
            return str(decoded.get("event", ""))
    return line
