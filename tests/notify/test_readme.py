"""The README's notification example is a working definition and its events table is the code's."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from release_mgmt.definition.loader import load_file
from release_mgmt.definition.notify_rules import events_markdown
from tests.helpers import minimal_definition, write_definition


def _section(repo: Path) -> str:
    text = (repo / "README.md").read_text()
    start = text.index("\n## Notifications")
    return text[start : text.index("\n## ", start + 5)]


def test_the_events_table_is_the_catalog(repo: Path) -> None:
    assert events_markdown() in _section(repo)


def test_the_routing_example_loads_with_the_directory_example(repo: Path, tmp_path: Path) -> None:
    """The README's rules, in a release whose prod has a gate and a change, load against its directory."""
    rules, directory = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", _section(repo), re.DOTALL)[:2]]
    (tmp_path / "directory.yaml").write_text(yaml.safe_dump(directory))
    (tmp_path / "notify").mkdir()
    (tmp_path / "notify" / "oncall.yaml").write_text(
        "rules:\n  - {events: [rollback.failed], channels: [release-mail], to: [alice]}\n"
    )
    data = minimal_definition("webshop", approver_groups={"release-managers": ["alice", "bob"]})
    prod = {
        **rules["environments"][0],
        "gates": [{"type": "approval", "groups": ["release-managers"]}],
        "change": {"authorizers": {"groups": ["release-managers"]}},
    }
    data |= {
        "notify": rules["notify"],
        "notify_routes": rules["notify_routes"],
        "environments": [{"name": "dev"}, prod],
    }
    defn = load_file(write_definition(tmp_path / "releases", "webshop.yaml", data)).definition
    assert len(defn.notify) == 3  # two of its own, one shared
    assert defn.environments[1].lock_notice.total_seconds() == 1200
