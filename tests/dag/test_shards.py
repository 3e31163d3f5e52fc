"""Definitions spread over the shard files: each file once, same names together, a slow shard says so."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from release_mgmt.dag.shards import files_of, shard_of_file, warn_if_slow
from tests.helpers import minimal_definition, write_definition


def test_every_definition_belongs_to_exactly_one_shard(tmp_path: Path) -> None:
    """50 files over 8 shards: the shards partition the folder; two files naming one release share a shard."""
    for n in range(50):
        write_definition(tmp_path, f"r{n:02d}.yaml", minimal_definition(f"r{n:02d}"))
    write_definition(tmp_path, "zz_copy.yaml", minimal_definition("r07"))
    shards = [files_of(tmp_path, (i, 8)) for i in range(8)]
    every = sorted(p for shard in shards for p in shard)
    assert every == sorted(tmp_path.glob("*.yaml"))
    assert sum(1 for shard in shards if shard) > 4  # spread, not piled up
    [together] = [s for s in shards if tmp_path / "r07.yaml" in s]
    assert tmp_path / "zz_copy.yaml" in together


def test_shard_files_know_their_place(repo: Path, tmp_path: Path) -> None:
    """The shipped dags/ has eight shard files; a file numbered past the others is refused with the fix."""
    assert shard_of_file(repo / "dags" / "release_pipelines.py") == (0, 8)
    assert shard_of_file(repo / "dags" / "release_pipelines_7.py") == (7, 8)
    shutil.copy(repo / "dags" / "release_pipelines.py", tmp_path / "release_pipelines.py")
    shutil.copy(repo / "dags" / "release_pipelines.py", tmp_path / "release_pipelines_5.py")
    with pytest.raises(ValueError, match="numbered 1 to 1"):
        shard_of_file(tmp_path / "release_pipelines_5.py")


def test_all_releases_load_across_the_shards(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's DagBag over dags/: every release once, a broken one as its error DAG, no import error."""
    for n in range(40):
        write_definition(tmp_path, f"r{n:02d}.yaml", minimal_definition(f"r{n:02d}"))
    write_definition(tmp_path, "broken.yaml", minimal_definition("broken", owner=""))
    monkeypatch.setenv("RELEASE_MGMT_RELEASES_DIR", str(tmp_path))
    bag = DagBag(dag_folder=str(repo / "dags"))
    assert bag.import_errors == {}
    assert set(bag.dags) == {f"release_r{n:02d}" for n in range(40)} | {"release_broken"}
    files = {Path(d.fileloc).name for d in bag.dags.values()}
    assert len(files) > 4


def test_a_slow_shard_says_how_to_spread_further(caplog: pytest.LogCaptureFixture) -> None:
    """Over half the import timeout: a warning naming the shard, its size, the timeout and the next file to add."""
    assert warn_if_slow(10.0, 30.0, (2, 8), 300) == ""
    with caplog.at_level(logging.WARNING):
        message = warn_if_slow(16.0, 30.0, (2, 8), 300)
    assert "shard 2 of 8 built 300 definitions in 16.0s" in message
    assert "release_pipelines_8.py" in message
    assert message in caplog.text


def test_a_missing_definitions_folder_is_one_visible_error(tmp_path: Path) -> None:
    """RELEASE_MGMT_RELEASES_DIR naming nothing: shard 0 reports it once (an error DAG), the others stay empty."""
    missing = tmp_path / "nope"
    assert files_of(missing, (0, 8)) == [missing]
    assert all(files_of(missing, (i, 8)) == [] for i in range(1, 8))
