"""Definitions spread over several DAG files, so their number never becomes a lost DAG folder.

Airflow gives each DAG file its own import timeout (``[core] dagbag_import_timeout``, 30 s by default) and
process. ``dags/`` ships ``release_pipelines.py`` and ``release_pipelines_1.py`` ... ``_7.py``: eight identical
thin files, each building the releases of its shard (their count is the number of such files, so adding files
spreads further). A release belongs to the shard of its name (CRC-32 of the name the file declares, read without
parsing YAML, else of the file name): files that declare the same name meet in one shard, where the second
becomes an error DAG as ever. One shard's problems never cost the other shards' DAGs.

A shard that takes more than half the import timeout says so in the DAG processor's log, with the fix.
"""

from __future__ import annotations

import logging
import re
import zlib
from pathlib import Path

from release_mgmt.definition.loader import declared_name, definition_files

SHARD_FILE = re.compile(r"^release_pipelines(?:_(\d+))?\.py$")
log = logging.getLogger(__name__)


def shard_of_file(dag_file: str | Path) -> tuple[int, int]:
    """(this file's shard, how many shard files its folder has)."""
    path = Path(dag_file)
    match = SHARD_FILE.match(path.name)
    if match is None:
        raise ValueError(f"{path.name} is not a shard file (release_pipelines.py or release_pipelines_<n>.py)")
    count = sum(1 for p in path.parent.iterdir() if SHARD_FILE.match(p.name))
    index = int(match.group(1) or 0)
    if index >= count:
        raise ValueError(f"{path.name}: shard files must be numbered 1 to {count - 1} next to release_pipelines.py")
    return index, count


def shard_of(path: Path, count: int) -> int:
    """The shard of one definition file."""
    key = declared_name(path) or path.stem
    return zlib.crc32(key.encode()) % count


def files_of(folder: Path, shard: tuple[int, int]) -> list[Path]:
    """The definition files of ``folder`` that belong to ``shard`` (index, count). A folder that is not there is
    shard 0's, so that one error DAG names it (never an empty Airflow that says nothing)."""
    index, count = shard
    if not folder.is_dir():
        return [folder] if index == 0 else []
    return [p for p in definition_files([folder]) if shard_of(p, count) == index]


def warn_if_slow(seconds: float, timeout: float, shard: tuple[int, int], definitions: int) -> str:
    """The warning for a shard that used over half its import timeout ('' when it did not)."""
    if seconds <= timeout / 2:
        return ""
    index, count = shard
    message = (
        f"release_mgmt: shard {index} of {count} built {definitions} definitions in {seconds:.1f}s, over half of "
        f"[core] dagbag_import_timeout ({timeout:.0f}s): add shard files (copies of dags/release_pipelines.py "
        f"named release_pipelines_{count}.py, ...) before its releases are lost to the timeout"
    )
    log.warning(message)
    return message


def may_hold(files: list[Path], dag_id: str, shard: tuple[int, int]) -> bool:
    """Whether a shard's ``files`` can define ``dag_id`` (a worker parses only the file of its DAG; every other
    shard file then builds nothing): its release name hashes here, or some file's name is not on a plain line."""
    index, count = shard
    name = dag_id.removeprefix("release_")
    return zlib.crc32(name.encode()) % count == index or any(declared_name(p) is None for p in files)
