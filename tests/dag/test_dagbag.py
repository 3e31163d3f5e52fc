"""The DAG file under Airflow's own DagBag: no import errors, the expected graph, broken files visible."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization

from tests.helpers import minimal_definition, write_definition

SAMPLE = "release_sample_webshop"


@pytest.fixture
def releases(tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A releases folder holding the sample release, which the DAG file is pointed at."""
    folder = tmp_path / "releases"
    folder.mkdir()
    shutil.copy(repo / "include/releases/sample_webshop.yaml", folder)
    monkeypatch.setenv("RELEASE_MGMT_RELEASES_DIR", str(folder))
    return folder


def _bag(repo: Path) -> DagBag:
    return DagBag(dag_folder=str(repo / "dags"))


def test_repository_dags_load_without_import_errors(repo: Path) -> None:
    """The shipped DAG file and definitions load cleanly."""
    bag = _bag(repo)
    assert bag.import_errors == {}
    assert SAMPLE in bag.dags


def test_sample_release_task_graph(releases: Path, repo: Path) -> None:
    """preflight -> dev -> staging -> prod -> summary, each environment deploy, validate, rollback, result."""
    dag = _bag(repo).dags[SAMPLE]
    edges = {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}
    expected = {"preflight": [], "summary": ["dev.result", "prod.result", "staging.result"]}
    previous = ["preflight"]
    for env in ("dev", "staging", "prod"):
        expected |= {
            f"{env}.enter": sorted(previous),
            f"{env}.deploy_web": [f"{env}.enter"],
            f"{env}.validate_web": [f"{env}.deploy_web"],
            f"{env}.rollback_web": [f"{env}.deploy_web", f"{env}.validate_web"],
            f"{env}.result": sorted(f"{env}.{t}" for t in ("enter", "deploy_web", "validate_web", "rollback_web")),
        }
        previous = [*previous, f"{env}.result"]
    # prod: the change is opened, a release manager approves, the change is authorized, then deploy;
    # the change is closed once everything else in prod is done
    chain = ["prod.enter", "prod.change_open", "prod.gate_approval", "prod.change_authorized"]
    expected |= {task: [before] for before, task in itertools.pairwise(chain)}
    expected["prod.deploy_web"] = ["prod.change_authorized"]
    prod_work = [*chain, "prod.deploy_web", "prod.validate_web", "prod.rollback_web"]
    expected["prod.change_close"] = sorted(prod_work)
    expected["prod.result"] = sorted([*prod_work, "prod.change_close"])
    assert edges == expected
    rules = {t.task_id: getattr(t.trigger_rule, "value", t.trigger_rule) for t in dag.tasks}
    assert rules["prod.rollback_web"] == "all_done"
    assert rules["prod.result"] == "all_done"
    assert rules["prod.deploy_web"] == "all_success"
    assert dag.max_active_runs == 1
    assert dag.params["version_web"] == "1.2.0"
    assert dag.params["environments"] == ["dev", "staging", "prod"]
    assert dag.params["dry_run"] is False


def test_invalid_definition_beside_valid_ones(releases: Path, repo: Path) -> None:
    """A broken file becomes a visible, paused error DAG; the valid releases still load."""
    write_definition(releases, "other.yaml", minimal_definition("other"))
    write_definition(releases, "broken.yaml", "name: broken\nowner: ops\ncomponents: {}\nenvironments: []\n")
    write_definition(releases, "garbage.yaml", "::: not yaml [\n")
    bag = _bag(repo)
    assert bag.import_errors == {}
    assert {SAMPLE, "release_other", "release_broken", "release_garbage"} <= set(bag.dags)
    broken = bag.dags["release_broken"]
    assert "invalid-definition" in broken.tags
    assert (broken.description or "").startswith("INVALID DEFINITION")
    docs = broken.doc_md or ""
    assert "broken.yaml:3: components: must be a list (got a mapping)" in docs
    assert "broken.yaml:4: environments: must have at least 1 item(s)" in docs
    assert broken.is_paused_upon_creation is True
    assert [t.task_id for t in broken.tasks] == ["definition_error"]


def test_duplicate_release_name_stays_visible(releases: Path, repo: Path) -> None:
    """A second file with the sample's name shows up as its own error DAG instead of vanishing."""
    shutil.copy(releases / "sample_webshop.yaml", releases / "zz_copy.yaml")  # after it in name order
    bag = _bag(repo)
    assert "invalid-definition" not in bag.dags[SAMPLE].tags
    assert "already used by" in (bag.dags["release_invalid_zz_copy"].doc_md or "")


def test_same_yaml_same_serialized_dag(releases: Path, repo: Path) -> None:
    """Two parses of the same YAML serialize to identical DAGs (no clock, no unordered sets)."""
    first = DagSerialization.to_dict(_bag(repo).dags[SAMPLE])
    second = DagSerialization.to_dict(_bag(repo).dags[SAMPLE])
    assert json.dumps(first, sort_keys=True, default=str) == json.dumps(second, sort_keys=True, default=str)


def test_worker_parses_only_its_dag(releases: Path, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With Airflow's parsing context set (a worker running one task), only that DAG is built."""
    write_definition(releases, "other.yaml", minimal_definition("other"))
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "release_other")
    assert set(_bag(repo).dags) == {"release_other"}
