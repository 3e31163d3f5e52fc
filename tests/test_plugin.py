"""The plugin survives Airflow's plugins loader: one plugin listed, no package file imported as a stray module."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys
from airflow import plugins_manager
plugins_manager.ensure_plugins_loaded()
plugins, errors = plugins_manager._get_plugins()
print(json.dumps({"plugins": sorted(p.name for p in plugins), "errors": errors,
                  "modules": {n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())}}))
"""


def _env(tmp_path: Path, plugins: Path, repo: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
        "AIRFLOW__CORE__DAGS_FOLDER": str(repo / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": str(plugins),
    }


def _strays(repo: Path, modules: dict[str, str | None]) -> set[str]:
    """Top-level modules made from the package's files (a name like `http` may also be the stdlib's)."""
    stems = {p.stem for p in (repo / "plugins/release_mgmt").rglob("*.py")} - {"__init__", "__main__"}
    return {n for n in stems if "/release_mgmt/" in str(modules.get(n) or "")}


def _probe(tmp_path: Path, plugins: Path, repo: Path) -> subprocess.CompletedProcess[str]:
    """Load the plugins of ``plugins`` as Airflow does, in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        env=_env(tmp_path, plugins, repo),
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _load(tmp_path: Path, plugins: Path, repo: Path) -> dict:
    out = _probe(tmp_path, plugins, repo)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_airflow_plugins_lists_release_mgmt(tmp_path: Path, repo: Path) -> None:
    """`airflow plugins` shows the release_mgmt plugin from the repository's plugins folder."""
    airflow = Path(sys.executable).parent / "airflow"
    out = subprocess.run(
        [str(airflow), "plugins", "--output", "json"],
        env=_env(tmp_path, repo / "plugins", repo),
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    listed = json.loads(out.stdout[out.stdout.index("[") :])
    assert [p["name"] for p in listed] == ["release_mgmt"]
    assert listed[0]["source"].endswith("release_mgmt_plugin.py")


def test_no_stray_modules(tmp_path: Path, repo: Path) -> None:
    """Loading plugins imports the package as `release_mgmt.*`, never its files as top-level modules."""
    result = _load(tmp_path, repo / "plugins", repo)
    assert result["plugins"] == ["release_mgmt"]
    assert result["errors"] == {}
    assert _strays(repo, result["modules"]) == set()


def test_without_airflowignore_the_loader_breaks(tmp_path: Path, repo: Path) -> None:
    """Control: without the .airflowignore the loader runs package files as top-level modules.

    (It even executes ``__main__.py``, which exits the process: that is what the ignore file prevents.)
    """
    plugins = tmp_path / "plugins"
    shutil.copytree(repo / "plugins", plugins, ignore=shutil.ignore_patterns("__pycache__", ".airflowignore"))
    out = _probe(tmp_path, plugins, repo)
    if out.returncode != 0:
        assert "usage: python -m release_mgmt" in out.stderr  # __main__.py ran as a "plugin"
    else:
        assert _strays(repo, json.loads(out.stdout.strip().splitlines()[-1])["modules"])
