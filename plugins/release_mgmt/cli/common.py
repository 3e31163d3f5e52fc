"""What the command groups share."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

DEFAULT_RELEASES = Path("include/releases")


def release_and_dag(value: str, names: Iterable[str]) -> tuple[str, str]:
    """(release name, DAG id) for a command argument that may be either: a known release name, a known
    release's DAG id, else ``release_...`` read as a DAG id and anything else as a release name."""
    from release_mgmt.planning import dag_id_for

    known = set(names)
    if value in known:
        return value, dag_id_for(value)
    for name in sorted(known):
        if dag_id_for(name) == value:
            return name, value
    if value.startswith("release_"):
        return value.removeprefix("release_"), value
    return value, dag_id_for(value)


def release_names(folder: Path) -> list[str]:
    """The names of the valid definitions of ``folder`` (none when it is not a folder)."""
    from release_mgmt.definition.loader import load_paths

    return [i.definition.name for i in load_paths([folder]).loaded] if folder.is_dir() else []
