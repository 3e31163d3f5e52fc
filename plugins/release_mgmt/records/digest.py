"""Evidence digests: canonical JSON and its SHA-256, shared by the change's close notes and the evidence
report, so an auditor can recompute either."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def canonical(value: Any) -> str:
    """The canonical JSON the digest is taken over (sorted keys, no spaces, UTF-8)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def digest(report: Mapping[str, Any]) -> str:
    """SHA-256 of the report without its own ``digest`` field."""
    body = {k: v for k, v in report.items() if k != "digest"}
    return hashlib.sha256(canonical(body).encode()).hexdigest()


def verify(report: Mapping[str, Any]) -> bool:
    """Whether the report still matches its digest."""
    return report.get("digest") == digest(report)
