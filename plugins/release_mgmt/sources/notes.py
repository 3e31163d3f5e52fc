"""Release notes from commits, pure: Conventional Commits types grouped in a fixed order, breaking changes
first, ticket keys found by a pattern, and the same notes as Markdown."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

#: Conventional Commits types, in the order notes show them; any other commit is an "other change"
GROUPS = {
    "feat": "Features",
    "fix": "Fixes",
    "perf": "Performance",
    "refactor": "Refactoring",
    "revert": "Reverts",
    "docs": "Documentation",
    "build": "Build",
    "ci": "CI",
    "test": "Tests",
    "style": "Style",
    "chore": "Chores",
}
OTHER = "Other changes"
HEADER = re.compile(r"^(?P<type>[A-Za-z]+)(?:\((?P<scope>[^()]{1,60})\))?(?P<bang>!)?: (?P<subject>\S.*)$")
BREAKING = re.compile(r"^BREAKING[ -]CHANGE: (.*)$", re.MULTILINE)
DEFAULT_TICKETS = r"\b[A-Z][A-Z0-9]{1,9}-[0-9]{1,7}\b"
#: at most this many commits per range; more are counted, not listed
MAX_COMMITS = 200


def parse_commit(sha: str, author: str, subject: str, body: str, tickets: re.Pattern[str]) -> dict[str, Any]:
    """One commit as notes show it."""
    match = HEADER.match(subject)
    if match and match["type"].lower() not in GROUPS:
        match = None  # "wip: ..." is no Conventional Commits type: the subject stays whole
    kind = match["type"].lower() if match else ""
    return {
        "sha": sha,
        "author": author,
        "type": kind,
        "scope": (match["scope"] or "") if match else "",
        "subject": match["subject"] if match else subject,
        "breaking": bool(match and match["bang"]) or bool(BREAKING.search(body)),
        #: what the BREAKING CHANGE footer says (empty when only "!" marks it)
        "breaking_note": (found[1].strip() if (found := BREAKING.search(body)) else ""),
        "tickets": sorted(set(tickets.findall(f"{subject}\n{body}"))),
    }


def notes(
    component: str,
    previous: str | None,
    version: str,
    commits: Iterable[dict[str, Any]],
    *,
    more: int = 0,
    note: str = "",
) -> dict[str, Any]:
    """The notes of ``component`` from ``previous`` (None: first deployment) to ``version``."""
    listed = list(commits)
    groups: dict[str, list[dict[str, Any]]] = {}
    for commit in listed:
        groups.setdefault(GROUPS.get(commit["type"], OTHER), []).append(commit)
    order = [*GROUPS.values(), OTHER]
    return {
        "component": component,
        "from": previous or "",
        "to": version,
        "commits": len(listed) + more,
        "not_listed": more,
        "breaking": [c for c in listed if c["breaking"]],
        "groups": {name: groups[name] for name in order if name in groups},
        "tickets": sorted({t for c in listed for t in c["tickets"]}),
        "note": note,
    }


def more_tickets(commit: Mapping[str, Any]) -> list[str]:
    """The commit's ticket keys its subject does not already show (they came from its body)."""
    return [t for t in commit.get("tickets", []) if t not in str(commit.get("subject", ""))]


def _line(commit: Mapping[str, Any], breaking: bool = False) -> str:
    scope = f"**{commit['scope']}**: " if commit.get("scope") else ""
    extra = more_tickets(commit)
    tickets = f" ({', '.join(extra)})" if extra else ""
    note = f": {commit['breaking_note']}" if breaking and commit.get("breaking_note") else ""
    return f"- {scope}{commit['subject']}{note}{tickets} [{str(commit['sha'])[:10]}]"


def to_markdown(entry: Mapping[str, Any], level: int = 3) -> str:
    """The notes of one component as Markdown."""
    since = f"since {entry['from']}" if entry.get("from") else "first deployment"
    lines = [f"{'#' * level} {entry['component']} {entry['to']} ({since}): {entry['commits']} commit(s)"]
    if entry.get("note"):
        lines.append(f"_{entry['note']}_")
    if entry.get("breaking"):
        lines += ["", "**Breaking changes**", *(_line(c, breaking=True) for c in entry["breaking"])]
    for name, commits in entry.get("groups", {}).items():
        lines += ["", f"**{name}**", *(_line(c) for c in commits)]
    if entry.get("not_listed"):
        lines.append(f"- ... and {entry['not_listed']} more commit(s)")
    if entry.get("tickets"):
        lines += ["", "Tickets: " + ", ".join(entry["tickets"])]
    return "\n".join(lines)
