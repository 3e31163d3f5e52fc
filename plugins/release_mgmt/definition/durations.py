"""Durations as people write them in definitions: 90s, 15m, 4h, 2d (or a number of seconds)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from release_mgmt.errors import quoted

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


#: the longest duration a definition may give (a window, a timeout, a wait): past it, arithmetic on dates overflows
#: long before anything useful happens
MAX_SECONDS = 400 * 86400


def parse_duration(value: Any) -> timedelta:
    """``"15m"`` -> 15 minutes; a positive number is seconds; whole seconds from 1s to 400d, else ValueError."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _PATTERN.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) < 20:
        seconds = float(value)
    else:
        raise ValueError(f"must be a duration like 90s, 15m, 4h or 2d (got {quoted(value)})")
    if not seconds > 0:
        raise ValueError(f"must be longer than zero (got {quoted(value)})")
    if seconds != int(seconds) or seconds < 1:
        raise ValueError(f"must be a whole number of seconds, at least 1s (got {quoted(value)})")
    if seconds > MAX_SECONDS:
        raise ValueError(f"must be at most 400d (got {quoted(value)})")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling: 2d, 4h, 15m or 90s."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d+)?[smhd]$", "examples": ["90s", "15m", "4h", "2d"]}),
]
