"""The events file notifier: with $RELEASE_MGMT_EVENTS_FILE set, each wanted release event is one JSON line,
masked; unset, nothing is written; a file it cannot write never fails the task."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from release_mgmt.notify.events_file import EventsFileNotifier
from release_mgmt.records import audit

LOG = logging.getLogger("task")


def _emit(event: str, **details: object) -> None:
    audit.emit(LOG, event, release="shop", run_id="r1", outcome="ok", environment="prod", details=dict(details))


def test_wanted_events_become_json_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the events matching $RELEASE_MGMT_EVENTS are written, one whole JSON object per line, masked."""
    from airflow.sdk.log import mask_secret

    mask_secret("pa55-in-a-work-note")
    target = tmp_path / "events.jsonl"
    monkeypatch.setenv("RELEASE_MGMT_EVENTS_FILE", str(target))
    monkeypatch.setenv("RELEASE_MGMT_EVENTS", "gate.*, run.finished")
    _emit("gate.requested", eligible=["bob"])
    _emit("deploy.started")
    _emit("run.finished", note="pa55-in-a-work-note")
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [(e["event"], e["release"], e["environment"]) for e in lines] == [
        ("gate.requested", "shop", "prod"),
        ("run.finished", "shop", "prod"),
    ]
    assert lines[0]["details"] == {"eligible": ["bob"]}
    assert "pa55-in-a-work-note" not in target.read_text()


def test_off_unless_configured_and_never_fails_a_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No variable, no file; a path it cannot write (a directory) is a warning, not an error."""
    monkeypatch.delenv("RELEASE_MGMT_EVENTS_FILE", raising=False)
    assert EventsFileNotifier.from_environment() is None
    _emit("deploy.started")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("RELEASE_MGMT_EVENTS_FILE", str(tmp_path))
    _emit("deploy.started")  # raises nothing
    assert list(tmp_path.iterdir()) == []
