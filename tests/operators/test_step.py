"""Trigger parameters never reach a shell as code (issue 12, row 3): a corpus of shell and Jinja attacks goes
through every parameter type into a command step and an ssh step (real sshd); the canary file is never
created, each value arrives byte for byte, and the step's process sees none of the worker's secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from release_mgmt.dag.builder import build_release_dags
from tests.helpers import command, minimal_definition, write_definition
from tests.release_runs import states, use_releases

pytestmark = pytest.mark.e2e
JWT_CANARY = "jwt-canary-" + "9" * 32
SERVICE_CANARY = "svc-canary-" + "8" * 32


def corpus(canary: Path) -> list[str]:
    touch = f"touch {canary}"
    return [
        f"$({touch})",
        f"`{touch}`",
        f"; {touch}",
        f"&& {touch}",
        f"| {touch}",
        f"\n{touch}\n",
        f"' ; {touch}; '",
        f'" ; {touch}; "',
        f"${{IFS}}{touch.replace(' ', '${IFS}')}",
        "$(printenv AIRFLOW__API_AUTH__JWT_SECRET)",
        "*",
        "{{ 7 * 7 }}",
        "{% raw %}{{ params }}{% endraw %}",
        "a  b\tc",
        "-n",
        "tab\there 'single' \"double\" \\backslash",
        "ünïcödé ✓",
    ]


def _definition(tmp_path: Path, values: list[str], out: Path) -> dict:
    params: dict[str, dict[str, Any]] = {f"p{i}": {"type": "string", "default": v} for i, v in enumerate(values)}
    params |= {"count": {"type": "integer", "default": 42}, "ratio": {"type": "number", "default": 0.5}}
    params |= {"flag": {"type": "boolean", "default": True}}
    names = sorted(params)
    writes = " && ".join(f"printf '%s' {{{{ params.{n} }}}} > {out}/cmd_{n}" for n in names)
    via_env = " && ".join(f"printf '%s' \"$RELEASE_PARAM_{n.upper()}\" > {out}/env_{n}" for n in names)
    over_ssh = " && ".join(f"printf '%s' {{{{ params.{n} }}}} > {out}/ssh_{n}" for n in names)
    data = minimal_definition("inject", environments=[{"name": "dev"}])
    data["parameters"] = params
    api = data["components"][0]
    api["deploy"] = command(f"{writes} && {via_env} && env > {out}/environment")
    api["validate"] = [{"type": "ssh", "connections": ["inject_host"], "command": over_ssh, "connect_attempts": 1}]
    api["rollback"] = command("true")
    write_definition(tmp_path / "releases", "inject.yaml", data)
    return params


def test_no_parameter_value_runs_and_every_value_arrives_byte_exact(
    tmp_path, monkeypatch, airflow_db, ssh_server
) -> None:
    """Every value of the corpus reaches the command and the ssh host as data, never as code."""
    canary, out = tmp_path / "CANARY", tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("AIRFLOW_CONN_INJECT_HOST", ssh_server.connection())
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", JWT_CANARY)
    monkeypatch.setenv("RELEASE_MGMT_SERVICE_SECRET", SERVICE_CANARY)
    params = _definition(tmp_path, corpus(canary), out)
    use_releases(tmp_path / "releases", monkeypatch)
    run = build_release_dags(tmp_path / "releases")["release_inject"].test()
    assert states(run)["dev.validate_api"] == "success", states(run)
    assert not canary.exists()
    for name, spec in params.items():
        want = {True: "true", False: "false"}.get(spec["default"], str(spec["default"]))
        for route in ("cmd", "env", "ssh"):
            assert (out / f"{route}_{name}").read_bytes() == want.encode(), (route, name)
    environment = (out / "environment").read_text()
    assert not [line for line in environment.splitlines() if line.startswith(("AIRFLOW", "_AIRFLOW"))]
    assert JWT_CANARY not in environment
    assert SERVICE_CANARY not in environment
    assert "RELEASE_PARAM_P0=" in environment


def test_a_nul_byte_stops_the_run_before_any_step(tmp_path, monkeypatch, airflow_db) -> None:
    """A value no environment can hold fails the run in preflight; nothing is deployed."""
    out = tmp_path / "out"
    out.mkdir()
    data = minimal_definition("nul", environments=[{"name": "dev"}])
    data["parameters"] = {"ticket": {"type": "string", "default": "T-1"}}
    data["components"][0]["deploy"] = command(f"touch {out}/deployed")
    write_definition(tmp_path / "releases", "nul.yaml", data)
    use_releases(tmp_path / "releases", monkeypatch)
    run = build_release_dags(tmp_path / "releases")["release_nul"].test(run_conf={"ticket": "T-1\x00; reboot"})
    assert states(run)["preflight"] == "failed"
    assert not (out / "deployed").exists()


def test_shell_strings_see_only_the_definitions_names(tmp_path, monkeypatch, airflow_db) -> None:
    """dag_run.conf is not available in a shell string: the definition is refused when read (issue 17), and
    should the check be passed by, the task fails instead of running it."""
    from release_mgmt.definition import checks

    data = minimal_definition("conf", environments=[{"name": "dev"}])
    data["components"][0]["deploy"] = command("echo {{ dag_run.conf }}")
    write_definition(tmp_path / "releases", "conf.yaml", data)
    use_releases(tmp_path / "releases", monkeypatch)
    refused = build_release_dags(tmp_path / "releases")["release_conf"]
    assert "unknown template name dag_run (shell strings never see Airflow's context)" in (refused.doc_md or "")
    monkeypatch.setattr(checks, "template_problems", lambda defn: [])  # the load-time check off: the run's own
    run = build_release_dags(tmp_path / "releases")["release_conf"].test(run_conf={"x": json.dumps("$(id)")})
    assert states(run)["dev.deploy_api"] == "failed"
