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


def test_worker_reads_only_the_file_of_its_release(releases: Path, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Out of 30 definitions, a worker parses one YAML file: the one that declares its release."""
    from release_mgmt.definition import yaml_io

    for n in range(30):
        write_definition(releases, f"r{n:02d}.yaml", minimal_definition(f"r{n:02d}"))
    parsed: list[str] = []
    real = yaml_io.parse

    def counted(text: str):
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(yaml_io, "parse", counted)
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "release_r17")
    assert set(_bag(repo).dags) == {"release_r17"}
    assert len(parsed) == 1


@pytest.mark.parametrize(
    ("first", "owner"),
    [
        ("name: dup\nowner: ''\n", "must not be empty"),  # the established file owns the name, broken or not
        ("{name: dup, owner: x}\n", None),  # a name the quick scan cannot read: the full load decides
    ],
)
def test_worker_builds_the_dag_the_processor_built(
    releases: Path, repo: Path, monkeypatch: pytest.MonkeyPatch, first: str, owner: str | None
) -> None:
    """When the quick scan cannot tell which file owns a name, the worker reads them all, as the DAG processor."""
    write_definition(releases, "a.yaml", first)
    write_definition(releases, "b.yaml", minimal_definition("dup", description="from b"))
    processor = _bag(repo).dags["release_dup"]
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "release_dup")
    worker = _bag(repo).dags["release_dup"]
    assert worker.doc_md == processor.doc_md
    if owner:
        assert owner in (worker.doc_md or "")


def test_the_trigger_form_lives_on_the_dag_only(releases: Path, repo: Path) -> None:
    """Tasks carry no copy of the trigger form (Airflow would copy and serialize it per task); a task still gets
    the form's values at run time, merged from the DAG as Airflow does."""
    from airflow.sdk.definitions.param import process_params

    dag = _bag(repo).dags[SAMPLE]
    task = dag.get_task("prod.deploy_web")
    assert not task.params
    assert set(dag.params) >= {"version_web", "environments", "dry_run"}
    merged = process_params(dag, task, {"version_web": "1.3.0"}, suppress_exception=False)
    assert (merged["version_web"], merged["dry_run"]) == ("1.3.0", False)
    serialized = DagSerialization.to_dict(dag)["dag"]
    assert all("params" not in t.get("__var", t) for t in serialized["tasks"] if "gate_" not in json.dumps(t))
    gate = dag.get_task("prod.gate_approval")
    assert set(gate.params) == {"comment"}  # the approval form's own field, not the trigger form


def test_parsing_imports_no_client_stacks(repo: Path, tmp_path: Path) -> None:
    """Reading the DAG file (every process that parses does) imports no HTTP, Kubernetes or SSH client: a task
    imports what it uses when it runs."""
    import os
    import subprocess
    import sys

    probe = (
        "import sys, runpy, airflow.sdk\n"
        "before = set(sys.modules)\n"
        f"runpy.run_path({str(repo / 'dags/release_pipelines.py')!r})\n"
        "stacks = ('requests', 'aiohttp', 'airflow.providers.http', 'kubernetes', 'paramiko', 'airflow.providers.ssh',"
        " 'airflow.providers.cncf')\n"
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in stacks or m.startswith(stacks)))\n"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "RELEASE_MGMT_RELEASES_DIR": str(repo / "include/releases")}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
