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


def test_files_whose_names_differ_only_in_replaced_characters_keep_one_dag_each(tmp_path: Path) -> None:
    """`my shop.yaml` and `my_shop.yaml`, both broken before a name could be read, showed one invalid DAG."""
    (tmp_path / "my shop.yaml").write_text("owner: [\n")
    (tmp_path / "my_shop.yaml").write_text("owner: [\n")
    dags = build_release_dags(tmp_path)
    assert len(dags) == 2
    assert {d.description.split(":")[0] for d in dags.values()} == {  # type: ignore[union-attr]
        f"INVALID DEFINITION {tmp_path / 'my shop.yaml'}",
        f"INVALID DEFINITION {tmp_path / 'my_shop.yaml'}",
    }
    assert "release_my_shop" in dags  # the file whose name needed no change keeps the plain id


def test_two_broken_files_with_one_release_name_both_stay_visible(tmp_path: Path) -> None:
    write_definition(tmp_path, "a.yaml", "name: shop\nowner: ''\n")
    write_definition(tmp_path, "b.yaml", "name: shop\nowner: 3\ncomponents: []\n")
    dags = build_release_dags(tmp_path)
    assert sorted(dags) == ["release_invalid_b", "release_shop"]
    assert "a.yaml" in (dags["release_shop"].description or "")
    assert "already used by" in (dags["release_invalid_b"].doc_md or "")


def test_an_established_release_keeps_its_id_when_another_file_claims_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new file whose name sorts earlier took an established release's DAG id. Now the file that was there
    first keeps it, the claimant is the one reported, and editing the owner later does not move the id."""
    import os

    monkeypatch.setenv("RELEASE_MGMT_STATE_DIR", str(tmp_path / "state"))
    releases = tmp_path / "releases"
    releases.mkdir()
    established = write_definition(releases, "payments_release.yaml", minimal_definition("shop", description="old"))
    os.utime(established, (1_700_000_000, 1_700_000_000))
    write_definition(releases, "a_new.yaml", minimal_definition("shop", description="claimant"))
    for _ in range(2):
        dags = build_release_dags(releases)
        assert INVALID_TAG not in dags["release_shop"].tags
        assert dags["release_shop"].description == "old"
        claimant = dags["release_invalid_a_new"]
        assert "release name 'shop' is already used by" in (claimant.doc_md or "")
        assert "payments_release.yaml" in (claimant.doc_md or "")
        established.write_text(established.read_text())  # the owner is edited: now the newer file
    assert (tmp_path / "state" / "owners" / "shop").read_text().strip() == str(established.resolve())


def test_a_definition_over_its_time_budget_costs_only_its_own_dag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file whose reading takes longer than its budget (whatever the cause) becomes its own invalid DAG; the
    others load, within the time of the budget."""
    import time

    from release_mgmt.definition import loader

    write_definition(tmp_path, "good.yaml", minimal_definition("good"))
    write_definition(tmp_path, "slow.yaml", minimal_definition("slow"))
    real = loader.load_file

    def slow_for_one(path: Path, *args: object, **kwargs: object) -> object:
        if path.name == "slow.yaml":
            while True:
                time.sleep(0.01)
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loader, "load_file", slow_for_one)
    monkeypatch.setattr(loader, "BUDGET_SECONDS", 0.5)
    started = time.monotonic()
    dags = build_release_dags(tmp_path)
    assert time.monotonic() - started < 5
    assert INVALID_TAG not in dags["release_good"].tags
    assert "reading this definition took longer than 0.5s" in (dags["release_slow"].doc_md or "")
