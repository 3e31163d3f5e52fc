"""`python -m release_mgmt validate|schema` as CI and pre-commit use them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import minimal_definition, write_definition


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "release_mgmt", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_validate_repository_definitions(repo: Path) -> None:
    """With no argument it checks include/releases and exits 0 when all are valid."""
    out = _cli("validate", cwd=repo)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "include/releases/sample_webshop.yaml: ok: release sample_webshop" in out.stdout


def test_validate_reports_every_broken_file_and_exits_1(tmp_path: Path, repo: Path) -> None:
    """Broken files print the loader's lines; valid ones still say ok; exit code 1."""
    write_definition(tmp_path, "good.yaml", minimal_definition("good"))
    out = _cli("validate", str(tmp_path), str(repo / "tests/definition/invalid/cycle.yaml"), cwd=tmp_path)
    assert out.returncode == 1
    assert "good.yaml: ok: release good" in out.stdout
    expected = (repo / "tests/definition/invalid/cycle.expected").read_text().strip()
    assert str(repo / "tests/definition/invalid") + "/" + expected in out.stdout
    assert "1 of 2 definition(s) valid" in out.stdout


def test_validate_missing_path_and_empty_folder(tmp_path: Path) -> None:
    """A path that does not exist fails; a folder without definitions fails with exit 2."""
    assert _cli("validate", "nope.yaml", cwd=tmp_path).returncode == 1
    empty = _cli("validate", str(tmp_path), cwd=tmp_path)
    assert empty.returncode == 2
    assert "no release definitions" in empty.stderr


def test_schema_prints_json_schema(tmp_path: Path) -> None:
    """`schema` prints the definition's JSON schema."""
    out = _cli("schema", cwd=tmp_path)
    assert out.returncode == 0
    assert json.loads(out.stdout)["title"] == "release_mgmt release definition"


def test_readme_example_is_valid(tmp_path: Path, repo: Path) -> None:
    """The definition shown in the README validates, so the docs never teach a broken file."""
    readme = (repo / "README.md").read_text()
    start = readme.index("```yaml\nname: webshop") + len("```yaml\n")
    example = write_definition(tmp_path, "webshop.yaml", readme[start : readme.index("```", start)])
    out = _cli("validate", str(example), cwd=tmp_path)
    assert out.returncode == 0, out.stdout


def test_readme_step_example_is_valid(tmp_path: Path, repo: Path) -> None:
    """The component with kubernetes, http_check and metrics_check steps in the README validates."""
    readme = (repo / "README.md").read_text()
    start = readme.index("```yaml\n  - name: api") + len("```yaml\n")
    text = "name: x\nowner: o\nenvironments: [{name: dev}]\ncomponents:\n" + readme[start : readme.index("```", start)]
    out = _cli("validate", str(write_definition(tmp_path, "x.yaml", text)), cwd=tmp_path)
    assert out.returncode == 0, out.stdout


def test_calendar_lists_windows_per_environment(tmp_path: Path, repo: Path) -> None:
    """`calendar` prints each environment's upcoming windows in local time and UTC, with the reason."""
    (tmp_path / "calendars").mkdir()
    (tmp_path / "calendars" / "company.yaml").write_text((repo / "include/calendars/company.yaml").read_text())
    data = minimal_definition("shop", calendars=["company"])
    write_definition(tmp_path / "releases", "shop.yaml", data)
    out = _cli(
        "calendar",
        "prod",
        "--releases",
        str(tmp_path / "releases"),
        "--from",
        "2026-12-01T00:00Z",
        "--days",
        "21",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "shop / prod: 4 window(s)"
    assert lines[3].split() == [  # by start: maintenance Dec 5 and 12, this freeze, maintenance Dec 19
        "freeze",
        "year-end",
        "2026-12-18",
        "18:00",
        "CET",
        "to",
        "2027-01-04",
        "06:00",
        "CET",
        "(2026-12-18",
        "17:00Z",
        "to",
        "2027-01-04",
        "05:00Z)",
        "year-end",
        "close",
        "and",
        "holidays",
    ]


def test_committed_calendar_schema(repo: Path) -> None:
    """include/schema/calendar.schema.json is what `schema --calendar` prints."""
    out = _cli("schema", "--calendar", cwd=repo)
    assert json.loads(out.stdout) == json.loads((repo / "include/schema/calendar.schema.json").read_text())


def test_status_without_an_airflow_home_says_where_instead_of_creating_one(tmp_path: Path, repo: Path) -> None:
    """Without AIRFLOW_HOME (or a database URL), status names the project's Airflow homes and creates nothing:
    Airflow would otherwise make an empty ~/airflow and answer 'no deployments'."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")} | {"HOME": str(tmp_path)}
    env["PYTHONPATH"] = str(repo / "plugins")
    done = subprocess.run(
        [sys.executable, "-m", "release_mgmt", "status"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "AIRFLOW_HOME" in done.stderr
    assert ".airflow/run-once" in done.stderr
    assert not (tmp_path / "airflow").exists()


def test_rest_commands_follow_the_api_port() -> None:
    """The CLI's REST client reaches the API server where scripts/airflow-env.sh put it."""
    from release_mgmt.cli.rest import AirflowApi

    assert AirflowApi(env={}).url == "http://127.0.0.1:8080"
    assert AirflowApi(env={"AIRFLOW__API__PORT": "18090"}).url == "http://127.0.0.1:18090"
    moved = {"AIRFLOW__API__HOST": "::1", "AIRFLOW__API__PORT": "18090"}
    assert AirflowApi(env=moved).url == "http://[::1]:18090"
    assert AirflowApi(env={**moved, "AIRFLOW_API_URL": "http://127.0.0.1:9/"}).url == "http://127.0.0.1:9"


def test_one_port_setting_moves_every_url(repo: Path) -> None:
    """AIRFLOW__API__PORT moves the API server, the execution API the tasks call and the base URL of links."""
    script = f"AIRFLOW__API__PORT=18090 AIRFLOW_HOME=$(mktemp -d); source {repo}/scripts/airflow-env.sh; "
    script += "echo $AIRFLOW__CORE__EXECUTION_API_SERVER_URL $AIRFLOW__API__BASE_URL"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["http://127.0.0.1:18090/execution/", "http://127.0.0.1:18090"]


def test_stop_sample_stops_the_sample_environments(tmp_path: Path, repo: Path) -> None:
    """The sample's environments keep running after a run; scripts/run-local.sh --stop-sample stops them."""
    import os
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = tmp_path / "sample" / "dev"
    ctl = [sys.executable, str(repo / "include/sample_service/ctl.py")]
    subprocess.run([*ctl, "deploy", "--root", str(root), "--port", str(port), "--version", "1.0.0"], check=True)
    pid = int((root / "service.pid").read_text())
    os.kill(pid, 0)  # running
    env = {**os.environ, "RELEASE_MGMT_SAMPLE_ROOT": str(tmp_path / "sample"), "AIRFLOW_HOME": str(tmp_path)}
    done = subprocess.run(
        [str(repo / "scripts/run-local.sh"), "--stop-sample"], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "dev: stopped" in done.stdout
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        __import__("time").sleep(0.1)
    else:
        raise AssertionError(f"sample service {pid} still runs")


def test_history_and_audit_take_a_release_name_or_its_dag_id() -> None:
    """Either spelling finds the same release, a release whose own name starts with release_ included."""
    from release_mgmt.cli.common import release_and_dag

    names = ["shop", "release_x"]
    assert release_and_dag("shop", names) == ("shop", "release_shop")
    assert release_and_dag("release_shop", names) == ("shop", "release_shop")
    assert release_and_dag("release_x", names) == ("release_x", "release_release_x")
    assert release_and_dag("release_release_x", names) == ("release_x", "release_release_x")
    assert release_and_dag("release_other", []) == ("other", "release_other")  # no definitions at hand
    assert release_and_dag("other", []) == ("other", "release_other")


def test_validate_prints_what_the_invalid_dags_show(repo: Path) -> None:
    """Issue 17: for every golden invalid case, validate's lines are exactly the lines its invalid-definition DAG
    shows (one source of truth), and it exits 1."""
    import re

    from release_mgmt.dag.builder import INVALID_TAG, build_release_dags

    folder = repo / "tests/definition/invalid"
    out = _cli("validate", "tests/definition/invalid", cwd=repo)
    assert out.returncode == 1
    printed = {line for line in out.stdout.splitlines() if not line.endswith("definition(s) valid")}
    shown: set[str] = set()
    for dag in build_release_dags(folder, display_root=repo).values():
        assert INVALID_TAG in dag.tags
        shown.update(re.findall(r"^- `(.*)`$", dag.doc_md or "", re.MULTILINE))
    assert printed == shown


def test_validate_fails_a_definition_whose_dag_cannot_be_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A definition that reads fine but whose DAG Airflow could not build passed validate; validate now builds it."""
    from release_mgmt.cli.main import main
    from release_mgmt.dag import builder

    write_definition(tmp_path, "shop.yaml", minimal_definition("shop"))
    assert main(["validate", str(tmp_path)]) == 0

    def broken(plan: object) -> None:
        raise ValueError("tag cannot be longer than 100 characters")

    monkeypatch.setattr(builder, "build_dag", broken)
    assert main(["validate", str(tmp_path)]) == 1
    assert "valid, but its DAG could not be built (ValueError: tag cannot be longer" in capsys.readouterr().out


def test_validate_fails_a_shared_calendar_scoped_to_nothing(tmp_path: Path) -> None:
    """A calendar window naming a release nobody has protected nothing, while `calendar` still listed it."""
    from release_mgmt.cli.main import main

    releases, calendars = tmp_path / "releases", tmp_path / "calendars"
    releases.mkdir()
    calendars.mkdir()
    write_definition(releases, "shop.yaml", minimal_definition("shop"))
    (calendars / "company.yaml").write_text(
        "windows:\n  - {name: close, kind: freeze, reason: r, timezone: UTC, start: 2026-12-20 00:00, "
        "end: 2026-12-27 00:00, releases: [shopp], environments: [prod]}\n"
    )
    out = _cli("validate", str(releases), cwd=tmp_path)
    assert out.returncode == 1
    assert (
        "company.yaml: windows[0].releases[0]: no release here is called 'shopp', so this window protects nothing "
        "there; known: shop"
    ) in out.stdout
    assert main(["validate", str(releases)]) == 1
