"""The package's layers, walked from its import statements: a module imports only its own layer or lower ones,
the pure layers import no Airflow, and every module stays small enough to read in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "plugins" / "release_mgmt"

#: rank of each top-level part of the package: a module may import its own rank or lower, never higher
LAYERS: dict[str, int] = {
    "__init__": 0,
    "errors": 0,
    "masking": 0,
    "retry": 0,
    "definition": 1,
    "gates": 1,
    "steps": 1,
    "sources": 1,
    "rules": 2,
    "planning": 2,
    "change_service": 3,
    "records": 3,
    "notify": 3,
    "hooks": 4,
    "triggers": 4,
    "operators": 5,
    "dag": 6,
    "reports": 6,
    "console": 7,
    "cli": 7,
    "plugin": 7,
    "__main__": 7,
}
#: parts that must run without Airflow installed: the definition, the plan and the rules
PURE = ("definition", "planning", "rules")
MAX_LINES = 350


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _part(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, at any depth (imports inside functions count)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_every_part_of_the_package_has_a_layer() -> None:
    """A new top-level module or package is placed in a layer before it is used."""
    assert {_part(p) for p in _modules()} <= set(LAYERS)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    """No module imports from a layer above its own."""
    rank = LAYERS[_part(path)]
    upward = [
        f"{path.relative_to(PACKAGE)}:{line}: imports {module} (layer {LAYERS[module.split('.')[1]]} > {rank})"
        for line, module in _imports(path)
        if module.startswith("release_mgmt.") and LAYERS.get(module.split(".")[1], 0) > rank
    ]
    assert upward == []


@pytest.mark.parametrize("path", [p for p in _modules() if _part(p) in PURE], ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_layers_import_no_airflow(path: Path) -> None:
    """Definitions, plans and rules are data and decisions: no Airflow import, even inside a function."""
    assert [f"{line}: {m}" for line, m in _imports(path) if m == "airflow" or m.startswith("airflow.")] == []


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small(path: Path) -> None:
    """A module reads in one sitting."""
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES


def test_the_walk_sees_an_upward_import(tmp_path: Path) -> None:
    """The import walk finds imports inside functions too (what an upward import hides behind)."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from release_mgmt.cli import main\n")
    assert _imports(module) == [(2, "release_mgmt.cli")]


def test_workers_and_the_triggerer_never_load_the_service_database_code() -> None:
    """Operators and triggers reach the change service through its contract, never its SQLAlchemy modules."""
    import subprocess
    import sys

    code = (
        "import sys, release_mgmt.dag.builder, release_mgmt.triggers.change, release_mgmt.triggers.lock\n"
        "from release_mgmt.dag.builder import operator_class\n"
        "from release_mgmt.planning import OPERATORS\n"
        "[operator_class(path) for path in OPERATORS.values()]\n"
        "print(sorted(m for m in sys.modules if m.startswith('release_mgmt.change_service')))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['release_mgmt.change_service', 'release_mgmt.change_service.contract', " + (
        "'release_mgmt.change_service.service_token']"
    )
