"""The README's version-source example is a valid set of components (each with a deploy step added)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from release_mgmt.definition.models import Component
from release_mgmt.sources import SOURCE_TYPES

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_example_loads_and_shows_every_source_type() -> None:
    """Every component of the example validates, and together they show every registered source type."""
    section = README.read_text().split("### Version sources and release notes", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    components = yaml.safe_load(block[1])["components"]
    deploy = {"type": "command", "command": "true"}
    loaded = [Component.model_validate({**c, "deploy": deploy}) for c in components]
    shown = {c.source.type for c in loaded if c.source}
    assert shown == {cls.model_fields["type"].annotation.__args__[0] for cls in SOURCE_TYPES}  # type: ignore[union-attr]
    assert loaded[0].source.ticket_pattern == r"\b[A-Z][A-Z0-9]{1,9}-[0-9]{1,7}\b"  # type: ignore[union-attr]
