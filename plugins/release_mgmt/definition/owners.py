"""Which file owns a release name that several files declare: the established one, the same on every parse.

A release's DAG id comes from its name, so two files declaring one name compete for one DAG. The owner keeps the
id; every other claimant becomes its own invalid-definition DAG saying which file owns the name. The owner is,
in this order:

1. the file recorded as owner the first time the conflict was seen (``<state>/owners/<name>``, where state is
   ``$RELEASE_MGMT_STATE_DIR``, default ``$AIRFLOW_HOME/release_mgmt``), while it still declares the name;
2. a file named after the release (``shop.yaml`` for ``name: shop``);
3. the file changed least recently (the one that was there first), then the first by path.

The record makes the choice stable once made: editing the owner later, or adding a third file whose name sorts
first, never moves the id. Recording is best effort (a read-only folder falls back to rules 2 and 3, which
give every parse the same answer as long as the files do not change).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def state_dir() -> Path:
    """Where release_mgmt keeps what it must remember between parses."""
    explicit = os.environ.get("RELEASE_MGMT_STATE_DIR")
    if explicit:
        return Path(explicit)
    home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(home) / "release_mgmt"


def choose_owner(name: str, candidates: Sequence[Path]) -> Path:
    """The owner of ``name`` among the files that declare it (see the module doc); recorded when new."""
    resolved = {p.resolve(): p for p in candidates}
    record = state_dir() / "owners" / name
    try:
        recorded = Path(record.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        recorded = None
    if recorded is not None and recorded in resolved:
        return resolved[recorded]
    owner = min(candidates, key=lambda p: (p.stem != name, _changed(p), str(p)))
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        temporary = record.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(str(owner.resolve()) + "\n", encoding="utf-8")
        temporary.replace(record)
    except OSError:
        pass  # a read-only state folder: the rules still give every parse the same owner
    return owner


def _changed(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return float("inf")
