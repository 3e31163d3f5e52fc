"""What the command groups share."""

from __future__ import annotations

from pathlib import Path

DEFAULT_RELEASES = Path("include/releases")
