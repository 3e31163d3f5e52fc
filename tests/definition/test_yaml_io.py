"""The definitions' YAML dialect reads the same on libyaml's parser as on the pure-Python one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from release_mgmt.definition import yaml_io


def _lines(node: yaml.Node) -> list[tuple[str, int]]:
    """Every node's kind and line, depth first."""
    found = [(type(node).__name__, node.start_mark.line)]
    children = node.value if isinstance(node.value, list) else []
    for child in children:
        for part in child if isinstance(child, tuple) else (child,):
            found += _lines(part)
    return found


@pytest.mark.parametrize("name", ["include/releases/sample_webshop.yaml", "include/calendars/company.yaml"])
def test_fast_and_pure_python_parsers_agree(repo: Path, name: str) -> None:
    """Same data, same node tree (lines), for the repository's own files."""
    text = (repo / name).read_text()
    fast = yaml_io._read(text, yaml_io.FastDefinitionLoader)
    slow = yaml_io._read(text, yaml_io.DefinitionLoader)
    assert fast[0] == slow[0]
    assert fast[1] is not None
    assert slow[1] is not None
    assert _lines(fast[1]) == _lines(slow[1])


def test_the_dialect_holds_on_the_fast_parser() -> None:
    """Versions, dates and yes/on stay text; true/false/null are typed; a duplicate key is refused."""
    data, _ = yaml_io.parse("a: 1.10\nb: on\nc: true\nd: 2026-01-01\ne: null\nf: 10\n")
    assert data == {"a": "1.10", "b": "on", "c": True, "d": "2026-01-01", "e": None, "f": "10"}
    with pytest.raises(yaml.YAMLError, match="duplicate key 'a'"):
        yaml_io.parse("a: 1\na: 2\n")
