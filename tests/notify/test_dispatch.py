"""The notifier seam: every audit event reaches each configured notifier, masked; a notifier that is off, does
not want the event, or fails never costs the task anything."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from release_mgmt import notify
from release_mgmt.records import audit

RECEIVED: list[dict[str, Any]] = []


class Collector:
    """Takes deploy events only."""

    name: ClassVar[str] = "collector"

    @classmethod
    def from_environment(cls) -> Collector | None:
        return cls()

    def wants(self, event: Mapping[str, Any]) -> bool:
        return str(event["event"]).startswith("deploy.")

    def send(self, event: Mapping[str, Any]) -> None:
        RECEIVED.append(dict(event))


class Broken(Collector):
    name: ClassVar[str] = "broken"

    def send(self, event: Mapping[str, Any]) -> None:
        raise ConnectionError("chat service down")


class Off(Collector):
    name: ClassVar[str] = "off"

    @classmethod
    def from_environment(cls) -> Off | None:
        return None


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    RECEIVED.clear()
    monkeypatch.setattr(notify, "NOTIFIERS", (Off, Broken, Collector))


class Lines:
    """A logger that keeps what it is told."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, event: Any, /, *args: Any) -> None:
        self.lines.append(str(event) % args)

    def warning(self, event: Any, /, *args: Any) -> None:
        self.lines.append("WARNING " + str(event) % args)


def test_every_audit_event_is_offered_masked() -> None:
    """The event a task writes as an audit line reaches the notifier as the same record, secrets masked."""
    from airflow.sdk.log import mask_secret

    mask_secret("hunter2-db-password")
    log = Lines()
    details = {"error": "login hunter2-db-password refused", "api_token": "t0k"}
    audit.emit(log, "deploy.finished", release="shop", run_id="r1", outcome="failed", component="api", details=details)
    audit.emit(log, "gate.vote", release="shop", run_id="r1", outcome="approve")
    assert [e["event"] for e in RECEIVED] == ["deploy.finished"]
    assert (RECEIVED[0]["release"], RECEIVED[0]["component"], RECEIVED[0]["outcome"]) == ("shop", "api", "failed")
    assert "hunter2-db-password" not in str(RECEIVED)
    assert "t0k" not in str(RECEIVED)
    failed = [r for line in log.lines if line.startswith("WARNING") and (r := audit.parse_line(line))]
    assert [(r["event"], r["release"], r["run_id"], r["outcome"]) for r in failed] == [
        ("notify.failed", "shop", "r1", "failed")
    ]
    assert failed[0]["details"] == {"notifier": "broken", "event": "deploy.finished", "error": "chat service down"}
    assert log.lines[0].startswith(audit.PREFIX)


def test_dispatch_names_who_took_the_event() -> None:
    """dispatch returns the notifiers that delivered; a failing one is skipped, never raised, and its failure
    is an audit line (notify.failed) in the emitting task's log."""
    log = Lines()
    assert notify.dispatch({"event": "deploy.started", "release": "shop"}, log) == ["collector"]
    assert notify.dispatch({"event": "run.finished", "release": "shop"}, log) == []
    [line] = log.lines
    assert line.startswith("WARNING " + audit.PREFIX)
    record = audit.parse_line(line)
    assert record is not None
    assert record["details"]["error"] == "chat service down"
