"""Notification routing, as a definition writes it: ``notify:`` rules (per release, per environment, and in shared
files include/notify/<name>.yaml) say which events go to which channels and people; the directory
(include/directory.yaml) names the channels (each an Airflow connection, so secrets stay there) and turns people
into addresses. ``EVENTS`` is the catalog: each notification event is one audit event (with one outcome)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from release_mgmt.gates.approval import USER_PATTERN


@dataclass(frozen=True)
class EventKind:
    """A notification event: the audit event it is (and the outcome, when only one counts), and who it is for."""

    audit: str
    outcome: str = ""
    says: str = ""
    #: told once per environment and run, whichever component's task met it first (else once per component)
    per_environment: bool = False


#: name -> the audit event it is; the names rules use (``approval.*`` patterns allowed)
EVENTS: dict[str, EventKind] = {
    "approval.requested": EventKind("gate.requested", "", "an approval gate waits for its approvers"),
    "approval.vote_refused": EventKind("gate.vote_refused", "", "a vote was refused (told to the voter)"),
    "approval.timed_out": EventKind("gate.timeout", "", "an approval gate was not decided in time"),
    "approval.rejected": EventKind("gate.decision", "rejected", "an approval gate rejected the run (or timed out so)"),
    "change.awaiting_authorization": EventKind("change.waiting", "", "a change waits for its authorizers"),
    "change.authorized": EventKind("change.implement", "", "a change was authorized"),
    "change.rejected": EventKind("change.refused", "", "a change was rejected or canceled"),
    "change.timed_out": EventKind("change.timeout", "", "a change was not authorized in time"),
    "window.waiting": EventKind(
        "window.waiting", "", "a deploy waits for a freeze to end or a maintenance window", per_environment=True
    ),
    "break_glass.requested": EventKind("break_glass.requested", "", "an emergency run asks to deploy in a freeze"),
    "break_glass.granted": EventKind(
        "window.freeze_overridden", "", "a deploy goes on during a freeze under break-glass", per_environment=True
    ),
    "deploy.started": EventKind("deploy.started", "", "a component's deploy started"),
    "deploy.failed": EventKind("deploy.finished", "failed", "a component's deploy failed"),
    "validation.failed": EventKind("validate.finished", "failed", "a component's validation failed"),
    "rollback.done": EventKind("rollback.finished", "success", "a component was rolled back"),
    "rollback.failed": EventKind("rollback.finished", "failed", "a component's rollback failed"),
    "environment.succeeded": EventKind("environment.finished", "succeeded", "every component of an environment is up"),
    "run.failed": EventKind("run.finished", "failed", "a run failed"),
    "run.succeeded": EventKind("run.finished", "succeeded", "a run succeeded"),
    "lock.waiting_long": EventKind("lock.waiting_long", "", "a run has waited for an environment lock too long"),
}

#: recipients a rule may name besides users, group:<name> and e-mail addresses
ROLES = {
    "approvers": "the approvers of the gate (other events: of every gate of the environment)",
    "authorizers": "the change's authorizers in the environment",
    "voter": "whoever cast the vote the event is about",
    "triggered_by": "whoever triggered the run",
}
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$")
CONNECTION_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}$"


def _known_event(pattern: str) -> str:
    if not any(fnmatch.fnmatchcase(name, pattern) for name in EVENTS):
        raise ValueError(f"unknown event {pattern!r}; events: {', '.join(EVENTS)} (patterns such as approval.*)")
    return pattern


def _recipient(value: str) -> str:
    if value in ROLES or EMAIL.match(value) or re.fullmatch(USER_PATTERN, value):
        return value
    if value.startswith("group:") and re.fullmatch(r"[a-z][a-z0-9_-]{0,49}", value[6:]):
        return value
    raise ValueError(
        f"{value!r} is not a recipient: write a user of the directory, group:<approver group>, an e-mail address, "
        f"or one of {', '.join(ROLES)}"
    )


def _matching(pattern: str, rule: str) -> AfterValidator:
    """A check that says what a value must look like in words (a regular expression is no message)."""

    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise ValueError(f"{value[:80]!r} is not {rule}")
        return value

    return AfterValidator(check)


EventPattern = Annotated[str, StringConstraints(max_length=60), AfterValidator(_known_event)]
Recipient = Annotated[str, StringConstraints(max_length=200), AfterValidator(_recipient)]
ChannelName = Annotated[
    str, _matching(r"[a-z][a-z0-9_-]{0,49}", "a channel name: lowercase letters, digits, '_' or '-', at most 50")
]
ConnectionId = Annotated[
    str, _matching(CONNECTION_ID, "an Airflow connection id: letters, digits, '_', '.' or '-', at most 250")
]
Email = Annotated[str, _matching(EMAIL.pattern, "an e-mail address such as alice@example.com")]
UserName = Annotated[
    str, _matching(USER_PATTERN, "an Airflow user name: letters, digits, '.', '_', '@', '+' or '-', at most 100")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


class NotifyRule(_Strict):
    """Which events go to which channels, for whom."""

    events: tuple[EventPattern, ...] = Field(
        min_length=1, max_length=40, description="Notification events (see the README), or patterns: approval.*"
    )
    channels: tuple[ChannelName, ...] = Field(
        min_length=1, max_length=10, description="Channels of the directory (include/directory.yaml)."
    )
    to: tuple[Recipient, ...] = Field(
        default=(),
        max_length=50,
        description="Who: directory users, group:<approver group>, e-mail addresses, or approvers, authorizers, "
        "voter, triggered_by. E-mail channels need someone; a webhook posts once and mentions them.",
    )


class Channel(_Strict):
    """A way to reach people: an Airflow connection (which holds the address and any secret)."""

    connection: ConnectionId = Field(description="The Airflow connection id (SMTP for email; HTTP for webhook).")
    kind: Literal["email", "webhook"] = Field(description="email (SMTP provider) or webhook (HTTP provider).")
    format: Literal["json", "slack", "teams"] = Field(
        default="json",
        description="A webhook's body: json (the event and message), slack ({text}), teams (a MessageCard).",
    )


class Person(_Strict):
    """How to reach one Airflow user."""

    name: str = Field(default="", max_length=100, description="Display name used in messages.")
    email: Email | None = None
    chat: str = Field(default="", max_length=100, description="Chat handle webhooks mention, e.g. @alice.")


class Directory(_Strict):
    """include/directory.yaml: the channels and the people notifications reach."""

    channels: dict[ChannelName, Channel] = Field(default_factory=dict, max_length=100)
    users: dict[UserName, Person] = Field(default_factory=dict, max_length=5000)


class SharedRules(_Strict):
    """include/notify/<name>.yaml: rules several releases use (a definition names it in notify_routes)."""

    rules: tuple[NotifyRule, ...] = Field(min_length=1, max_length=50)


def matches(pattern: str, event: str) -> bool:
    return fnmatch.fnmatchcase(event, pattern)


def notification_event(record: Mapping[str, object]) -> str | None:
    """The notification event an audit record is, if any."""
    for name, kind in EVENTS.items():
        if record.get("event") == kind.audit and (not kind.outcome or record.get("outcome") == kind.outcome):
            return name
    return None


def events_markdown() -> str:
    """The README's table of notification events (a test keeps the README's copy equal to this)."""
    rows = ["| event | when | audit event |", "|---|---|---|"]
    for name, kind in EVENTS.items():
        audit = f"`{kind.audit}`" + (f" ({kind.outcome})" if kind.outcome else "")
        rows.append(f"| `{name}` | {kind.says} | {audit} |")
    return "\n".join(rows)
