"""Versions from sources in a real run (dag.test on Airflow's database): the preflight resolves them, every task
deploys what it resolved, the trigger form overrides, the deployment record keeps source and digest, the notes of
each environment are in the audit trail, and a source that cannot answer stops the run before any deploy."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from release_mgmt import cli
from release_mgmt.dag.builder import build_release_dags
from release_mgmt.operators.versions import notes_text
from release_mgmt.reports import evidence, status
from tests.release_runs import audit_records, states, use_releases
from tests.sources.conftest import Repo

pytestmark = pytest.mark.e2e


def release(tmp_path: Path, name: str, source: dict[str, Any]) -> Path:
    """A two-environment release whose one component's deploy appends ``<env> <version>`` to deployed.txt."""
    folder = tmp_path / "releases"
    folder.mkdir(exist_ok=True)
    log = tmp_path / "deployed.txt"
    step = {"type": "command", "command": f"echo {{{{ environment }}}} {{{{ version }}}} >> {log}"}
    definition = {
        "name": name,
        "owner": "payments-team",
        "policy": {"require_rollback": False},
        "components": [{"name": "api", "source": source, "deploy": step}],
        "environments": [{"name": "dev"}, {"name": "prod"}],
    }
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(definition, sort_keys=False))
    return folder


def run(folder: Path, name: str, monkeypatch: pytest.MonkeyPatch, **conf: Any) -> Any:
    use_releases(folder, monkeypatch)
    return build_release_dags(folder, only=f"release_{name}")[f"release_{name}"].test(run_conf=conf)


def test_git_tags_resolve_deploy_record_and_notes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Run 1 deploys the newest tag to dev and prod; a new tag and run 2 deploy it with notes from 1.0.0; a typed
    version overrides the source and the evidence says so."""
    repo = Repo(tmp_path / "payments")
    repo.commit("feat: first")
    repo.tag("v1.0.0")
    folder = release(tmp_path, "versions_git", {"type": "git", "repository": repo.url, "tag_prefix": "v"})
    assert str(run(folder, "versions_git", monkeypatch).state) == "success"
    assert (tmp_path / "deployed.txt").read_text().split("\n")[:2] == ["dev 1.0.0", "prod 1.0.0"]
    sha = repo.commit("fix(api): refunds rounding PAY-31")
    repo.tag("v1.1.0")
    capfd.readouterr()
    second = run(folder, "versions_git", monkeypatch)
    assert str(second.state) == "success"
    records = audit_records(capfd.readouterr().out)
    resolved = [r for r in records if r["event"] == "version.resolved"]
    assert [(r["outcome"], r["details"]["version"], r["details"]["digest"]) for r in resolved] == [
        ("resolved", "1.1.0", sha)
    ]
    notes = {r["environment"]: r["details"] for r in records if r["event"] == "release.notes"}
    assert {env: (n["from"], n["to"], n["commits"], n["tickets"]) for env, n in notes.items()} == {
        "dev": ("1.0.0", "1.1.0", 1, ["PAY-31"]),
        "prod": ("1.0.0", "1.1.0", 1, ["PAY-31"]),
    }
    recorded = [r for r in records if r["event"] == "deployment.recorded"]
    assert {r["version"] for r in recorded} == {"1.1.0"}
    rows = {row.environment: row.record for row in status.running("versions_git")}
    expected = ("1.1.0", sha, f"git {repo.url}@v1.1.0")
    assert {env: (r.version, r.digest, r.source) for env, r in rows.items()} == dict.fromkeys(("dev", "prod"), expected)
    preflight = second.get_task_instance("preflight").xcom_pull(task_ids="preflight")
    assert preflight["notes"]["prod"]["api"]["groups"]["Fixes"][0]["subject"] == "refunds rounding PAY-31"
    report = evidence.build({"run_id": second.run_id}, [], records)
    assert report["versions"][0] | {"reference": ""} == {
        "component": "api",
        "source": "git",
        "reference": "",
        "version": "1.1.0",
        "digest": sha,
        "how": "resolved",
    }
    assert report["environments"]["prod"]["release_notes"]["api"]["tickets"] == ["PAY-31"]
    text = evidence.to_markdown(report)
    assert f"- api 1.1.0: resolved (git {repo.url}@v1.1.0, digest {sha})" in text
    assert "### api 1.1.0 (since 1.0.0): 1 commit(s)" in text
    assert "- **api**: refunds rounding PAY-31 [" in text  # the ticket the subject shows is not repeated
    context: Any = {"ti": SimpleNamespace(xcom_pull=lambda task_ids: preflight)}
    assert notes_text(context, "prod").startswith("\n\nRelease notes:\n### api 1.1.0 (since 1.0.0)")
    assert notes_text(context, "qa") == ""

    repo.commit("feat: exports PAY-40")
    repo.tag("v1.2.0")
    capfd.readouterr()
    assert cli.main(["notes", "versions_git", "--env", "prod", "--releases", str(folder)]) == 0
    printed = capfd.readouterr().out
    assert printed.startswith("## api 1.2.0 (since 1.1.0): 1 commit(s)")
    assert "exports PAY-40" in printed
    assert "refunds rounding" not in printed
    assert (
        cli.main(
            ["notes", "versions_git", "--env", "prod", "--from", "1.0.0", "--to", "1.1.0", "--releases", str(folder)]
        )
        == 0
    )
    assert "refunds rounding" in capfd.readouterr().out

    capfd.readouterr()
    override = run(folder, "versions_git", monkeypatch, version_api="1.0.0", environments=["dev"])
    assert str(override.state) == "success"
    records = audit_records(capfd.readouterr().out)
    assert [(r["outcome"], r["details"]["reference"]) for r in records if r["event"] == "version.resolved"] == [
        ("override", "trigger form")
    ]
    assert (tmp_path / "deployed.txt").read_text().splitlines()[-1] == "dev 1.0.0"


def test_a_source_that_cannot_answer_stops_the_run_before_any_deploy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A pattern matching nothing: preflight fails naming the source and reason; nothing deployed."""
    empty = Repo(tmp_path / "nothing")
    empty.commit("chore: untagged")
    folder = release(tmp_path, "versions_bad", {"type": "git", "repository": empty.url, "tags": "v9.*"})
    failed = run(folder, "versions_bad", monkeypatch)
    out = capfd.readouterr().out
    assert states(failed)["preflight"] == "failed"
    assert states(failed)["dev.deploy_api"] != "success"
    assert "api: the version source (git " in out
    assert "gave no version: " in out
    assert "it has no tags" in out
    refused = [r for r in audit_records(out) if r["event"] == "run.refused"]
    assert refused
    assert refused[0]["outcome"] == "version_source"
    assert not (tmp_path / "deployed.txt").exists()


def test_promote_deploys_what_dev_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A run of prod alone with a promote source deploys dev's last known good version."""
    folder = release(tmp_path, "versions_promote", {"type": "promote"})
    first = run(folder, "versions_promote", monkeypatch, version_api="3.2.1", environments=["dev"])
    assert str(first.state) == "success"
    promoted = run(folder, "versions_promote", monkeypatch, environments=["prod"])
    assert str(promoted.state) == "success"
    assert (tmp_path / "deployed.txt").read_text().splitlines() == ["dev 3.2.1", "prod 3.2.1"]
    capfd.readouterr()
    from_start = run(folder, "versions_promote", monkeypatch, environments=["dev"])
    assert states(from_start)["preflight"] == "failed"
    assert "no environment to promote from" in capfd.readouterr().out
