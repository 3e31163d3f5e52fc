"""Notifiers: who hears about a release event besides the task log. ``NOTIFIERS`` is the registry.

Every event release_mgmt writes as an audit line (records/audit.py) is offered, already masked, to each
registered notifier that is configured here (``from_environment`` returns an instance, or None when it is
off); the notifier says whether it ``wants`` the event and ``send``s it. Sending never fails or holds up the
task that emitted the event: a notifier that raises is logged and skipped.

Adding a notifier: a module with a class that has ``name``, ``from_environment()``, ``wants(event)`` and
``send(event)``, one line in ``NOTIFIERS``, and its tests (tests/notify/).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from release_mgmt.masking import redact_value
from release_mgmt.notify.events_file import EventsFileNotifier
from release_mgmt.notify.outbox import OutboxNotifier


class Notifier(Protocol):
    """One way of telling people (or systems) about release events."""

    name: ClassVar[str]

    @classmethod
    def from_environment(cls) -> Notifier | None:
        """The notifier as this process is configured, or None when it is not."""
        ...

    def wants(self, event: Mapping[str, Any]) -> bool:
        """Whether ``event`` (an audit record: event, release, run_id, environment, ..., details) is for it."""
        ...

    def send(self, event: Mapping[str, Any]) -> None:
        """Deliver ``event``; may raise (the caller logs it and goes on)."""
        ...


#: the registry, in delivery order
NOTIFIERS: tuple[type[Notifier], ...] = (EventsFileNotifier, OutboxNotifier)


class WarningLog(Protocol):
    """Anything with ``warning`` like a logger (the emitting task's, so a failed notification shows in its log)."""

    def warning(self, event: Any, /, *args: Any) -> Any: ...


def dispatch(event: Mapping[str, Any], log: WarningLog) -> list[str]:
    """Offer ``event`` (masked first) to every configured notifier; the names of those that took it. Never raises:
    a notifier that fails is reported on ``log``."""
    masked = redact_value(dict(event))
    delivered = []
    for kind in NOTIFIERS:
        try:
            notifier = kind.from_environment()
            if notifier is None or not notifier.wants(masked):
                continue
            notifier.send(masked)
        except Exception as exc:  # noqa: BLE001 - a notification never breaks a release
            log.warning("%s", _failed(kind.name, masked, exc))
            continue
        delivered.append(kind.name)
    return delivered


def _failed(notifier: str, event: Mapping[str, Any], exc: Exception) -> str:
    """The audit line of a notification that could not be handed on (the task goes on)."""
    from release_mgmt.records.audit import audit_line

    return audit_line(
        "notify.failed",
        release=str(event.get("release", "")),
        run_id=str(event.get("run_id", "")),
        environment=str(event.get("environment", "")),
        component=str(event.get("component", "")),
        outcome="failed",
        details=redact_value({"notifier": notifier, "event": event.get("event"), "error": str(exc)[:500]}),
    )
