"""Issue 17's fuzzing campaign, the short run: 2,000 seeded mutations of the corpus through the whole path a
definition takes in Airflow, each with a time and memory limit. No case may crash (an exception past the checks,
an error DAG made of an unforeseen exception, an unreadable message) or hang. The long run is
``python -m tools.fuzz_definitions --cases 50000`` (README, "Fuzzing")."""

from __future__ import annotations

from pathlib import Path

import pytest

from release_mgmt.definition.loader import load_file
from tools import fuzz_definitions
from tools.definition_path import exercise

pytestmark = pytest.mark.fuzz


def test_the_corpus_is_valid_and_exercised_end_to_end() -> None:
    """Every corpus file is a working release (else mutations would start from an error), through the same path."""
    sources = fuzz_definitions.corpus()
    assert len(sources) >= 3
    for folder in fuzz_definitions.CORPUS:
        for path in sorted(folder.glob("*.yaml")):
            if fuzz_definitions._is_release(path):
                load_file(path, calendars_dir=fuzz_definitions.CALENDARS)
                assert exercise(path, fuzz_definitions.CALENDARS).kind == "accepted"


def test_cases_are_the_same_on_every_machine() -> None:
    sources = fuzz_definitions.corpus()
    first = [fuzz_definitions.case_text(11, i, sources) for i in range(30)]
    assert first == [fuzz_definitions.case_text(11, i, sources) for i in range(30)]
    assert len(set(first)) > 20  # and they differ from each other


def test_the_harness_tells_a_hang_and_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The campaign's verdicts can fail: a case that never returns is a hang, one that escapes is a crash."""
    import time

    from tools import definition_path

    def slow_or_broken(path: Path, calendars_dir: Path | None = None) -> object:
        text = path.read_text()
        if "SLEEP" in text:
            time.sleep(60)
        raise definition_path.Crash("ValueError@somewhere", "boom")

    monkeypatch.setattr(definition_path, "exercise", slow_or_broken)
    pool = fuzz_definitions.Pool(2, timeout=2.0, memory_mb=512)
    try:
        results = sorted(pool.run([(0, "SLEEP"), (1, "name: x")]))
    finally:
        pool.close()
    assert results == [(0, "hang", "hang"), (1, "crash", "ValueError@somewhere")]


def test_two_thousand_mutated_definitions_neither_crash_nor_hang(tmp_path: Path) -> None:
    campaign = fuzz_definitions.fuzz(2026, 2000, workers=2, timeout=20.0, out=tmp_path / "findings")
    print(campaign.report())
    assert campaign.counts["accepted"] + campaign.counts["error"] == 2000, campaign.report()
    assert campaign.counts["accepted"] >= 50  # the mutations still reach the build, serialize and window paths


def test_fifteen_hundred_mutated_directories_and_rule_files_neither_crash_nor_hang(tmp_path: Path) -> None:
    """The notification campaign: the directory and a shared rules file, mutated, used by a notifying definition
    and every event routed (messages rendered, markup escaped). Its findings are regression cases in
    tests/definition/test_notify_rules.py."""
    campaign = fuzz_definitions.fuzz(2027, 1500, workers=2, timeout=20.0, out=tmp_path / "findings", target="notify")
    print(campaign.report())
    assert campaign.counts["accepted"] > 50  # mutations that keep the files valid are routed end to end
    assert not campaign.findings, campaign.report()


def test_fifteen_hundred_mutated_train_files_neither_crash_nor_hang(tmp_path: Path) -> None:
    """The train campaign: a train file, mutated, loaded against valid member releases, planned, built and
    serialized; every rejection a readable error naming the file. Its findings are regression cases in
    tests/definition/test_trains.py."""
    campaign = fuzz_definitions.fuzz(2028, 1500, workers=2, timeout=20.0, out=tmp_path / "findings", target="train")
    print(campaign.report())
    assert campaign.counts["accepted"] > 40  # mutations that keep the train valid reach the built DAG
    assert not campaign.findings, campaign.report()
