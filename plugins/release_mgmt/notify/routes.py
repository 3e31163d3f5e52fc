"""Which messages an event makes: the definition's rules (release-wide, then the event's environment), each
channel of a matching rule, each person the rule names. The DAG builder registers every release it builds, so the
process that runs a release task knows its routing without reading anything again."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from release_mgmt.definition.models import ReleaseDefinition
from release_mgmt.definition.notify_files import approvers, authorizers
from release_mgmt.definition.notify_rules import EMAIL, EVENTS, Channel, NotifyRule, matches, notification_event
from release_mgmt.notify.messages import Occasion, render

#: release name -> its definition (as built in this process), for the releases that have notification rules
ROUTES: dict[str, ReleaseDefinition] = {}


def register(defn: ReleaseDefinition) -> None:
    """Remember ``defn``'s routing (a release without rules is forgotten)."""
    if defn.directory is not None and (defn.notify or any(e.notify for e in defn.environments)):
        ROUTES[defn.name] = defn
    else:
        ROUTES.pop(defn.name, None)


def rules_for(defn: ReleaseDefinition, environment: str) -> list[NotifyRule]:
    return [*defn.notify, *(r for e in defn.environments if e.name == environment for r in e.notify)]


def messages_for(defn: ReleaseDefinition, record: Mapping[str, Any], occasion: Occasion) -> list[dict[str, str]]:
    """The messages ``record`` (a masked audit record) makes under ``defn``'s rules; [] when it is not a
    notification event or no rule wants it. Per channel: one e-mail per address, or one webhook post naming
    everyone the matching rules name. Each has its idempotency key."""
    event = notification_event(record)
    if event is None or defn.directory is None:
        return []
    made: list[dict[str, str]] = []
    for name, people in _wanted(defn, event, record, occasion).items():
        channel = defn.directory.channels[name]
        if channel.kind == "email":
            made += [
                _message(event, record, occasion, Target(name, channel, person, address))
                for person in people
                if (address := _address(defn, person))
            ]
        else:
            mentions = ", ".join(_handle(defn, p) for p in people)
            made.append(_message(event, record, occasion, Target(name, channel, ",".join(people), "", mentions)))
    return made


def unreachable(defn: ReleaseDefinition, record: Mapping[str, Any], occasion: Occasion) -> list[str]:
    """People an e-mail channel should reach for ``record`` who have no address (told in the task log, never
    silently dropped)."""
    event = notification_event(record)
    if event is None or defn.directory is None:
        return []
    channels = defn.directory.channels
    wanted = _wanted(defn, event, record, occasion)
    return sorted(
        {p for c, people in wanted.items() if channels[c].kind == "email" for p in people if not _address(defn, p)}
    )


def _wanted(defn: ReleaseDefinition, event: str, record: Mapping[str, Any], occasion: Occasion) -> dict[str, list[str]]:
    """Channel -> the people the rules matching ``event`` name for it (release-wide rules, then the
    environment's), in order, once each."""
    wanted: dict[str, list[str]] = {}
    for rule in rules_for(defn, str(record.get("environment", ""))):
        if any(matches(p, event) for p in rule.events):
            people = _people(defn, rule, event, record, occasion)
            for channel in rule.channels:
                found = wanted.setdefault(channel, [])
                found.extend(p for p in people if p not in found)
    return wanted


@dataclass(frozen=True)
class Target:
    """Where one message goes: the channel, and a person with an e-mail address (or, on a webhook, everyone
    named, mentioned by their chat handles)."""

    channel_name: str
    channel: Channel
    recipient: str
    address: str
    mentions: str = ""


def _message(event: str, record: Mapping[str, Any], occasion: Occasion, target: Target) -> dict[str, str]:
    """One outbox message (its key names the run, event, target and the address, or the webhook channel)."""
    rendered = render(event, record, occasion, target.mentions)
    payload = {"event": event, "release": record["release"], "environment": record["environment"]}
    payload |= {"run_id": occasion.run_id, "versions": occasion.versions, "links": rendered.links}
    channel = target.channel
    webhook = channel.kind == "webhook"
    return {
        "key": idempotency_key(event, record, occasion, target.channel_name, target.address),
        "event": event,
        "environment": str(record.get("environment", ""))[:100],
        "channel": target.channel_name,
        "kind": channel.kind,
        "connection": channel.connection,
        "format": channel.format,
        "recipient": target.recipient[:200],
        "address": target.address,
        "subject": rendered.subject,
        "text": rendered.text,
        "html": "" if webhook else rendered.html,
        "payload": json.dumps(payload | {"mentions": target.mentions}, default=str) if webhook else "",
    }


def idempotency_key(event: str, record: Mapping[str, Any], occasion: Occasion, channel: str, address: str) -> str:
    """One message per run, event, target, channel and address (a webhook: per channel): a retried task (or a
    gate that re-requests) hands the same key over again and the outbox keeps the first."""
    details = record.get("details") or {}
    which = record.get("actor", "") if event == "approval.vote_refused" else details.get("gate", "")
    component = "" if EVENTS[event].per_environment else record.get("component")
    parts: tuple[Any, ...] = (occasion.dag_id, occasion.run_id, event, record.get("environment"))
    parts += (component, record.get("change", ""), which, channel, address)
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


def _people(
    defn: ReleaseDefinition, rule: NotifyRule, event: str, record: Mapping[str, Any], occasion: Occasion
) -> list[str]:
    """The people (user names or addresses) a rule's ``to`` means for this event, in order, once each."""
    env = str(record.get("environment", ""))
    details = record.get("details") or {}
    found: list[str] = []
    for recipient in rule.to:
        if recipient == "approvers":
            if event.startswith("break_glass") and defn.break_glass is not None:
                names = defn.break_glass.eligible(defn.approver_groups)
            else:
                names = list(details.get("eligible") or approvers(defn, env))
            names = [n for n in names if n != occasion.triggered_by]  # who triggered cannot approve the run
        elif recipient == "authorizers":
            names = [n for n in authorizers(defn, env) if n != occasion.triggered_by]
        elif recipient == "voter":
            names = [str(record.get("actor", ""))]
        elif recipient == "triggered_by":
            names = [occasion.triggered_by]
        elif recipient.startswith("group:"):
            names = list(defn.approver_groups.get(recipient.removeprefix("group:"), ()))
        else:
            names = [recipient]
        found.extend(n for n in names if n and n not in found)
    return found


def _address(defn: ReleaseDefinition, person: str) -> str:
    if EMAIL.match(person):
        return person
    entry = defn.directory.users.get(person) if defn.directory else None
    return entry.email or "" if entry else ""


def _handle(defn: ReleaseDefinition, person: str) -> str:
    entry = defn.directory.users.get(person) if defn.directory else None
    return (entry.chat or entry.name or person) if entry else person
