"""Real processes in tests: whether one still lives, the pid a command wrote down, and waiting for processes to
end (the fault-injection tests kill tasks and check that what they started ends with them)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not count)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def pid_from(path: Path, seconds: float = 20) -> int:
    """The pid a command writes to ``path``, once it has; fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"{path.name} never appeared")


def gone_within(pids: Iterable[int], seconds: float) -> bool:
    """Whether every one of ``pids`` has ended within ``seconds``."""
    pids = list(pids)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def died_at(pid: int, seconds: float) -> float:
    """When ``pid`` was first seen gone (epoch seconds); fails after ``seconds``."""
    if gone_within([pid], seconds):
        return time.time()
    raise AssertionError(f"process {pid} still runs after {seconds}s")
