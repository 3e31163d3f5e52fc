"""What a notification says: a subject and a body (plain text and HTML) naming the release, the environment, the
versions, who and why, what to do next, and links into Airflow (``[api] base_url``). Built from an audit record
that is already masked; every text is masked again on the way out (the versions come from the run's params)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from release_mgmt.masking import redact


def airflow_url() -> str:
    """Airflow's ``[api] base_url`` (links in messages and approval requests); "" when unknown (links relative)."""
    try:
        from airflow.configuration import conf
    except ImportError:  # a worker without airflow-core
        return ""
    return str(conf.get("api", "base_url", fallback="") or "").rstrip("/")


@dataclass(frozen=True)
class Occasion:
    """The run an event happened in, as the emitting task sees it."""

    dag_id: str
    run_id: str
    task_id: str
    triggered_by: str
    versions: dict[str, str] = field(default_factory=dict)
    base_url: str = ""


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    links: dict[str, str]


def _headline(event: str, r: Mapping[str, Any], d: Mapping[str, Any], versions: str) -> tuple[str, str]:
    """(subject's sentence, what to do next) of one notification event."""
    release, env, comp, ver, change = r["release"], r["environment"], r["component"], r["version"], r["change"]
    until = f" until {d['until']}" if d.get("until") else ""
    table: dict[str, tuple[str, str]] = {
        "approval.requested": (
            f"Approval needed: {release} {versions} into {env}",
            "Approve or reject it under Required actions (a rejection needs a comment).",
        ),
        "approval.vote_refused": (
            f"Your vote on {release} into {env} was refused",
            f"Nothing was counted: {d.get('reason', '')}".strip(),
        ),
        "approval.timed_out": (
            f"Approval timed out: {release} {versions} into {env}",
            "Nobody decided in time; trigger a new run when approvers are available.",
        ),
        "approval.rejected": (f"Rejected: {release} {versions} into {env}", "Nothing is deployed there by this run."),
        "change.awaiting_authorization": (
            f"Change {change} awaits authorization: {release} {versions} into {env}",
            "Authorizers: open the change in the release console and approve or reject it.",
        ),
        "change.authorized": (f"Change {change} authorized: {release} into {env}", "The deploy goes on."),
        "change.rejected": (
            f"Change {change} rejected: {release} into {env}",
            "Nothing is deployed there by this run; see the change's work notes for why.",
        ),
        "change.timed_out": (
            f"Change {change} not authorized in time: {release} into {env}",
            "Trigger a new run once the CAB can decide.",
        ),
        "window.waiting": (
            f"Waiting for a window: {release} into {env}{until}",
            "Nothing to do: the run goes on by itself when the window allows it.",
        ),
        "break_glass.requested": (
            f"EMERGENCY: {release} asks to deploy during a freeze (change {change})",
            "Break-glass approvers: approve or reject it under Required actions.",
        ),
        "break_glass.granted": (
            f"EMERGENCY: a freeze was opened for {release} in {env}",
            "The deploy goes on during the freeze under the emergency change.",
        ),
        "deploy.started": (f"Deploying {comp} {ver} to {env} ({release})", "Watch the run; nothing to do."),
        "deploy.failed": (
            f"Deploy failed: {comp} {ver} in {env} ({release})",
            "It is being rolled back to the last known good version; look at the deploy task's log.",
        ),
        "validation.failed": (
            f"Validation failed: {comp} {ver} in {env} ({release})",
            "It is being rolled back to the last known good version; look at the validate task's log.",
        ),
        "rollback.done": (
            f"Rolled back: {comp} in {env} ({release}), {ver} removed",
            "The last known good version runs again; fix the release and trigger a new run.",
        ),
        "rollback.failed": (
            f"ROLLBACK FAILED: {comp} in {env} ({release})",
            "Act now: the environment may run a broken version. Look at the rollback task's log.",
        ),
        "environment.succeeded": (f"{env} succeeded: {release} {versions}", "Nothing to do."),
        "run.failed": (f"Run failed: {release} {versions}", "Read the run's evidence report for what failed."),
        "run.succeeded": (f"Run succeeded: {release} {versions}", "Nothing to do."),
        "lock.waiting_long": (
            f"{release} has waited {d.get('waited_minutes', '?')} min for lock {d.get('lock', '')} in {env}",
            "See who holds it (python -m release_mgmt locks); the run goes on when it is released.",
        ),
    }
    return table.get(event, (f"{event}: {release} {env}", ""))


def _why(record: Mapping[str, Any], details: Mapping[str, Any]) -> str:
    for key in ("reason", "error", "comment"):
        if details.get(key):
            return str(details[key])
    if details.get("state"):
        return f"state {details['state']}"
    failed = details.get("failed") or details.get("summary")
    return "; ".join(map(str, failed)) if isinstance(failed, list) else ""


def _needs(details: Mapping[str, Any]) -> str:
    """What an approval gate waits for: how many approvals, until when, then what."""
    if not details.get("min_approvals"):
        return ""
    quorums = "".join(f", {q.get('min_approvals')} from {q.get('group')}" for q in details.get("group_quorums") or [])
    wait = (
        f"; waits {details['timeout']}, then {details.get('on_timeout', 'reject')}s" if details.get("timeout") else ""
    )
    return f"{details['min_approvals']} distinct approval(s){quorums}{wait}"


def links(event: str, record: Mapping[str, Any], occasion: Occasion) -> dict[str, str]:
    """Where to act or look (absolute when ``[api] base_url`` is set)."""
    base = occasion.base_url.rstrip("/")
    run = f"{base}/dags/{quote(occasion.dag_id)}/runs/{quote(occasion.run_id, safe='')}"
    found = {"Run": run}
    if event in ("approval.requested", "break_glass.requested"):
        found = {"Approve or reject": f"{run}/tasks/{quote(occasion.task_id)}/required_actions", **found}
    if event.startswith("change."):
        sys_id = str(record.get("details", {}).get("sys_id", ""))
        found = {"Change": f"{base}/release-console/changes" + (f"/{quote(sys_id)}" if sys_id else ""), **found}
    if event in (
        "run.failed",
        "run.succeeded",
        "rollback.failed",
        "rollback.done",
        "validation.failed",
        "deploy.failed",
    ):
        console_run = f"{base}/release-console/runs/{quote(occasion.dag_id)}/{quote(occasion.run_id, safe='')}"
        found["Evidence"] = f"{console_run}/evidence"
    return found


def render(event: str, record: Mapping[str, Any], occasion: Occasion, mentions: str = "") -> Rendered:
    """Subject, plain text and HTML of one notification."""
    details = record.get("details") or {}
    versions = ", ".join(f"{c} {v}" for c, v in sorted(occasion.versions.items()) if v) or "-"
    headline, next_step = _headline(event, record, details, versions)
    who = record.get("actor") or occasion.triggered_by
    rows = [
        ("Release", record["release"]),
        ("Environment", record["environment"]),
        ("Component", f"{record.get('component', '')} {record.get('version', '')}".strip()),
        ("Versions", versions),
        ("Who", who),
        ("Triggered by", occasion.triggered_by),
        ("Why", _why(record, details)),
        ("Needs", _needs(details)),
        ("Change", record.get("change", "")),
        ("For", mentions),
        ("Next", next_step),
    ]
    shown = [(k, redact(str(v))) for k, v in rows if v]
    found = links(event, record, occasion)
    subject = redact(f"[release_mgmt] {headline}")[:300]
    text = "\n".join([headline, "", *(f"{k}: {v}" for k, v in shown), "", *(f"{k}: {url}" for k, url in found.items())])
    cells = "".join(f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in shown)
    anchors = " · ".join(f'<a href="{html.escape(url)}">{html.escape(k)}</a>' for k, url in found.items())
    body = f"<html><body><p><b>{html.escape(headline)}</b></p><table>{cells}</table><p>{anchors}</p></body></html>"
    return Rendered(subject, redact(text), redact(body), found)
