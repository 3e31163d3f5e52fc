"""Broken definitions stay visible: each becomes a paused, unrunnable DAG whose description and docs carry
the file, the key path and the fix."""

from __future__ import annotations

import re
import zlib
from datetime import UTC, datetime
from pathlib import Path

from airflow.sdk import DAG

from release_mgmt.definition.models import NAME_PATTERN
from release_mgmt.errors import DefinitionError
from release_mgmt.operators.invalid import DefinitionErrorOperator
from release_mgmt.planning import dag_id_for

START_DATE = datetime(2024, 1, 1, tzinfo=UTC)  # fixed: the same YAML must give the same DAG
INVALID_TAG = "invalid-definition"


def safe_stem(path: Path) -> str:
    """The file's name as a DAG id part; when characters had to be replaced (``my shop.yaml``) or the name cut, a
    short hash of the file name follows, so that no two files share one (``my_shop.yaml`` keeps ``my_shop``)."""
    stem = re.sub(r"[^a-z0-9_-]", "_", path.stem.lower())[:100] or "unnamed"
    if stem == path.stem:
        return stem
    return f"{stem}_{zlib.crc32(path.name.encode()):08x}"


def broken_dag_id(error: DefinitionError) -> str:
    """The DAG id a broken file would have had: from its ``name`` when the loader could read one, else its file
    name (the file is never read again here)."""
    name = error.name if error.name and re.fullmatch(NAME_PATTERN, error.name) else safe_stem(error.path)
    return dag_id_for(name)


def build_broken_dag(error: DefinitionError, dag_id: str) -> DAG:
    """A visible, unrunnable DAG carrying a broken definition's errors in its description and docs."""
    errors = error.lines()
    dag = DAG(
        dag_id=dag_id,
        description=f"INVALID DEFINITION {error.file}: {error.problems[0].message}"[:200],
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        tags=["release", INVALID_TAG],
        doc_md="### Invalid release definition\n\nFix these problems in the file:\n\n"
        + "\n".join(f"- `{line}`" for line in errors)
        + "\n\nThen run `python -m release_mgmt validate`.",
        is_paused_upon_creation=True,
    )
    with dag:
        DefinitionErrorOperator(task_id="definition_error", errors=errors)
    return dag
