"""Issue 17, isolation by construction: whatever one definition does while it is read, planned or built, it
becomes its own invalid-definition DAG and every other release still loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from release_mgmt.dag.builder import INVALID_TAG, build_release_dags
from tests.helpers import minimal_definition, write_definition


@pytest.mark.parametrize("reserved", ["preflight", "summary"])
def test_an_environment_named_like_a_release_task_costs_only_its_own_dag(tmp_path: Path, reserved: str) -> None:
    """An environment named preflight or summary passed validation and crashed DAG building (duplicate task id),
    taking every release of the folder with it."""
    write_definition(tmp_path, "good.yaml", minimal_definition("good"))
    write_definition(tmp_path, "bad.yaml", minimal_definition("bad", environments=[{"name": reserved}]))
    dags = build_release_dags(tmp_path)
    assert INVALID_TAG not in dags["release_good"].tags
    bad = dags["release_bad"]
    assert INVALID_TAG in bad.tags
    assert "bad.yaml" in (bad.description or "")


def test_a_file_that_crashes_the_reader_costs_only_its_own_dag(tmp_path: Path) -> None:
    """1,000-deep nesting made the reader raise RecursionError: now a clean error for that file alone."""
    write_definition(tmp_path, "good.yaml", minimal_definition("good"))
    (tmp_path / "deep.yaml").write_text("name: deep\nvars:\n  x: " + "[" * 1000 + "]" * 1000 + "\n")
    dags = build_release_dags(tmp_path)
    assert INVALID_TAG not in dags["release_good"].tags
    [broken] = [d for d in dags.values() if INVALID_TAG in d.tags]
    assert "deep.yaml" in (broken.description or "")
    assert "Traceback" not in (broken.doc_md or "")
