"""The evidence report of one release run, from what Airflow recorded: pure, so it is tested without Airflow.

Input: the run (who triggered it, when, with which parameters, its state), its task instances and
the audit records of their logs. Output: one report (a dict) with a SHA-256 over its canonical
JSON, and a Markdown rendering for people who never opened Airflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from release_mgmt import masking
from release_mgmt.records.digest import canonical, digest, verify
from release_mgmt.sources import notes

REPORT_VERSION = 1
__all__ = ["REPORT_VERSION", "build", "canonical", "digest", "fetch", "to_markdown", "verify"]


def build(
    run: Mapping[str, Any],
    tasks: Iterable[Mapping[str, Any]],
    audit: Iterable[Mapping[str, Any]],
    malformed: Iterable[str] = (),
) -> dict[str, Any]:
    """The report of one run; ``audit`` records in log order. Secrets Airflow's masker knows, and values of
    sensitive keys, are masked before anything is reported or digested."""
    records = [masking.redact_value(dict(r)) for r in audit]
    run = masking.redact_value(dict(run))
    environments: dict[str, dict[str, Any]] = {}
    for record in records:
        env = record.get("environment") or ""
        if not env:
            continue
        section = environments.setdefault(
            env, {"outcome": "", "gates": [], "refused_votes": [], "windows": [], "change": {}, "components": {}}
        )
        _add(section, record)
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "release": next((r["release"] for r in records if r.get("release")), ""),
        "dag_id": run.get("dag_id", ""),
        "run_id": run.get("run_id", ""),
        "trigger": {
            "by": run.get("triggered_by", ""),
            "at": run.get("start_date", ""),
            "parameters": run.get("conf", {}),
        },
        "result": run.get("state", ""),
        "environments": environments,
        "tasks": [
            {
                "task_id": t.get("task_id"),
                "state": t.get("state"),
                "try_number": t.get("try_number"),
                "start": t.get("start_date"),
                "end": t.get("end_date"),
                "audit": list(t.get("audit", [])),
            }
            for t in tasks
        ],
        "versions": [dict(r.get("details") or {}) for r in records if r.get("event") == "version.resolved"],
        "notifications": [_notification(r) for r in records if str(r.get("event", "")).startswith("notify.")],
        "audit_lines": len(records),
        "malformed_audit_lines": list(malformed),
    }
    for section in environments.values():
        for comp in section["components"].values():
            comp["after"] = _after(comp)
    report["digest"] = digest(report)
    return report


def _after(component: Mapping[str, Any]) -> str:
    """The version running after the run: restored on a successful rollback, new on a successful deploy."""
    outcome = {s["event"]: s["outcome"] for s in component["steps"]}
    if outcome.get("rollback.finished") == "success":
        return str(component["previous_version"])
    if outcome.get("deploy.finished") == "success" and "rollback.started" not in outcome:
        return str(component["version"])
    return str(component["previous_version"]) if "deploy.finished" not in outcome else "unknown"


def _notification(record: Mapping[str, Any]) -> dict[str, Any]:
    """Who was told what, through which channel, and how it went (the summary's notify.* lines; a hand-over
    that failed in any task is a notify.failed line of that task)."""
    details = record.get("details") or {}
    return {
        "status": str(record.get("event", "")).removeprefix("notify."),
        "notification": details.get("notification") or details.get("event", ""),
        "environment": record.get("environment", ""),
        "channel": details.get("channel", details.get("notifier", "")),
        "recipient": details.get("recipient", ""),
        "subject": details.get("subject", ""),
        "attempts": details.get("attempts"),
        "error": details.get("error", ""),
        "at": record.get("time"),
    }


def _add_versions(section: dict[str, Any], event: str, record: Mapping[str, Any], details: Mapping[str, Any]) -> bool:
    """Release notes and a train's member runs (each member run's own evidence is that run's report)."""
    if event == "release.notes":
        section.setdefault("release_notes", {})[record.get("component") or ""] = dict(details)
    elif event == "train.member_finished":
        member = {k: details.get(k, "") for k in ("member", "purpose", "member_run_id", "versions")}
        section.setdefault("members", []).append(member | {"outcome": record.get("outcome", "")})
    else:
        return False
    return True


def _add(section: dict[str, Any], record: Mapping[str, Any]) -> None:
    event, details = str(record.get("event", "")), record.get("details") or {}
    component = record.get("component") or ""
    if _add_versions(section, event, record, details):
        return
    if event == "environment.finished":
        section["outcome"] = record.get("outcome", "")
    elif event == "gate.decision":
        section["gates"].append(
            {
                "gate": details.get("gate"),
                "decision": details.get("decision"),
                "approvers": details.get("approvers", []),
                "votes": details.get("votes", []),
                "rejected_by": details.get("rejected_by", ""),
                "comment": details.get("comment", ""),
                "timeout": details.get("timeout", False),
                "at": record.get("time"),
            }
        )
    elif event == "gate.vote_refused":
        section["refused_votes"].append(
            {"user": record.get("actor"), "reason": details.get("reason"), "at": record.get("time")}
        )
    elif event.startswith("window."):
        section["windows"].append(
            {
                "event": event,
                "component": component,
                "reason": details.get("reason"),
                "until": details.get("until"),
                "at": record.get("time"),
            }
        )
    elif event.startswith("lock."):  # present only where runs take turns: who held it, how long this run waited
        section.setdefault("lock", []).append(
            {
                "event": event,
                "lock": details.get("lock"),
                "held_by": details.get("held_by"),
                "waited_seconds": details.get("waited_seconds"),
                "held_seconds": details.get("held_seconds"),
                "at": record.get("time"),
            }
        )
    elif event.startswith("change."):
        _add_change(section["change"], event, record, details)
    elif component and event.split(".", maxsplit=1)[0] in ("deploy", "validate", "rollback"):
        entry = section["components"].setdefault(
            component, {"version": record.get("version", ""), "previous_version": "", "steps": []}
        )
        if details.get("previous_version"):
            entry["previous_version"] = details["previous_version"]
        entry["steps"].append(
            {
                "event": event,
                "outcome": record.get("outcome"),
                "at": record.get("time"),
                "error": details.get("error", ""),
            }
        )


def _add_change(change: dict[str, Any], event: str, record: Mapping[str, Any], details: Mapping[str, Any]) -> None:
    """A change event: its transition, close code, who authorized it, or why it was not adopted."""
    change["number"] = record.get("change") or change.get("number", "")
    change.setdefault("transitions", []).append(
        {"event": event, "outcome": record.get("outcome"), "at": record.get("time")}
    )
    if event == "change.closed":
        change["close_code"] = record.get("outcome")
    elif event == "change.implement":
        change["decisions"] = details.get("decisions", [])  # never "authorizations": a key Airflow masks
    elif event == "change.foreign":
        change["refused"] = {k: details.get(k) for k in ("created_by", "type", "problems")}


def to_markdown(report: Mapping[str, Any]) -> str:
    """The report for people: what happened, who decided, what ran before and after."""
    lines = [
        f"# Release {report['release']}: run {report['run_id']}",
        "",
        f"- result: **{report['result']}**",
        f"- triggered by {report['trigger']['by'] or 'the scheduler'} at {report['trigger']['at']}",
        f"- parameters: `{canonical(report['trigger']['parameters'])}`",
        f"- SHA-256 of this report's JSON: `{report['digest']}`",
        "",
    ]
    lines += [_version_line(found) for found in report.get("versions") or []]
    for env, section in report["environments"].items():
        lines += [f"## {env}: {section['outcome'] or 'no outcome recorded'}", ""]
        for gate in section["gates"]:
            who = ", ".join(gate["approvers"]) or gate["rejected_by"] or ("timeout" if gate["timeout"] else "-")
            lines.append(f"- gate {gate['gate']}: {gate['decision']} by {who} {gate['comment']}".rstrip())
        for vote in section["refused_votes"]:
            lines.append(f"- refused vote by {vote['user']}: {vote['reason']}")
        for window in section["windows"]:
            lines.append(f"- {window['event']}: {window['reason']}")
        lines += [_lock_line(lock) for lock in section.get("lock", [])]
        if section["change"]:
            change = section["change"]
            lines.append(f"- change {change.get('number')}: {change.get('close_code') or 'not closed'}")
            lines += [
                f"  - {d['state']} by {d['approver']} at {d['at']}" + (f": {d['comments']}" if d["comments"] else "")
                for d in change.get("decisions", [])
            ]
            if change.get("refused"):
                lines.append(f"  - not adopted: {'; '.join(change['refused'].get('problems') or [])}")
        for name, comp in section["components"].items():
            outcome = ", ".join(f"{s['event']}={s['outcome']}" for s in comp["steps"])
            before = comp["previous_version"] or "nothing recorded"
            lines.append(f"- {name}: {before} -> {comp['version']}, now {comp['after']} ({outcome})")
        lines += [
            f"- member {m['member']} ({m['purpose']}): {m['outcome']}, run {m['member_run_id']}"
            for m in section.get("members") or []
        ]
        for entry in (section.get("release_notes") or {}).values():
            lines += ["", notes.to_markdown(entry, level=3)]
        lines.append("")
    lines += _notification_lines(report.get("notifications") or [])
    if report["malformed_audit_lines"]:
        lines += ["## Malformed audit lines", "", *[f"- `{m}`" for m in report["malformed_audit_lines"]], ""]
    return "\n".join(lines)


def _version_line(found: Mapping[str, Any]) -> str:
    """Where a component's version came from: its source and reference (or the trigger form), and its digest."""
    digest = f", digest {found['digest']}" if found.get("digest") else ""
    where = f"{found['source']} {found['reference']}"
    return f"- {found['component']} {found['version']}: {found['how']} ({where}{digest})"


def _notification_lines(notifications: list[Mapping[str, Any]]) -> list[str]:
    if not notifications:
        return []
    lines = ["## Notifications", ""]
    for note in notifications:
        to = f" to {note['recipient']}" if note["recipient"] else ""
        why = f": {note['error']}" if note["error"] else ""
        lines.append(f"- {note['status']}: {note['notification']}{to} via {note['channel']}{why}")
    return [*lines, ""]


def _lock_line(lock: Mapping[str, Any]) -> str:
    if lock["event"] == "lock.waiting":
        held = lock.get("held_by") or {}
        return f"- lock {lock['lock']}: waited behind {held.get('dag_id', '?')} run {held.get('run_id', '?')}"
    if lock["event"] == "lock.acquired":
        return f"- lock {lock['lock']}: taken at {lock['at']} after {lock['waited_seconds']}s in line"
    if lock["event"] == "lock.released":
        return f"- lock {lock['lock']}: given back after {lock['held_seconds']}s"
    return f"- lock {lock['lock']}: {lock['event']}"


def fetch(api: Any, dag_id: str, run_id: str) -> dict[str, Any]:
    """The report of a run, read through Airflow's REST API with the caller's credentials."""
    from urllib.parse import quote

    from release_mgmt.records.audit import records_from_log

    base = f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}"
    run = api.get(base)
    tis = sorted(
        api.get(f"{base}/taskInstances", limit=1000).get("task_instances", []),
        key=lambda t: (t.get("start_date") or "~", t.get("task_id")),
    )
    records: list[dict[str, Any]] = []
    malformed: list[str] = []
    for ti in tis:
        ti["audit"] = []
        for attempt in range(1, int(ti.get("try_number") or 0) + 1):
            log = api.get(f"{base}/taskInstances/{quote(ti['task_id'])}/logs/{attempt}", full_content="true")
            found, broken = records_from_log(log.get("content") if isinstance(log, dict) else log)
            records.extend(found)
            ti["audit"].extend(found)
            malformed.extend(broken)
    meta = {
        "dag_id": dag_id,
        "run_id": run_id,
        "triggered_by": run.get("triggering_user_name") or "",
        "start_date": run.get("start_date") or run.get("run_after") or "",
        "conf": run.get("conf") or {},
        "state": run.get("state", ""),
    }
    return build(meta, tis, records, malformed)
