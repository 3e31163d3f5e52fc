"""The events file: every release event as one JSON line appended to ``$RELEASE_MGMT_EVENTS_FILE`` (a file a
log shipper or a local chat bridge tails). Off when the variable is unset; ``$RELEASE_MGMT_EVENTS`` (comma
separated, ``*`` wildcards, e.g. ``gate.*,change.waiting,run.finished``) narrows which events are written."""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar


class EventsFileNotifier:
    """Appends each wanted event to a file, one JSON object per line (whole lines: one write each)."""

    name: ClassVar[str] = "events_file"

    def __init__(self, path: Path, patterns: tuple[str, ...] = ("*",)) -> None:
        self.path = path
        self.patterns = patterns

    @classmethod
    def from_environment(cls) -> EventsFileNotifier | None:
        path = os.environ.get("RELEASE_MGMT_EVENTS_FILE", "").strip()
        if not path:
            return None
        wanted = os.environ.get("RELEASE_MGMT_EVENTS", "*")
        return cls(Path(path), tuple(p.strip() for p in wanted.split(",") if p.strip()) or ("*",))

    def wants(self, event: Mapping[str, Any]) -> bool:
        return any(fnmatch.fnmatchcase(str(event.get("event", "")), pattern) for pattern in self.patterns)

    def send(self, event: Mapping[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"), default=str) + "\n"
        with self.path.open("a", encoding="utf-8") as out:
            out.write(line)
