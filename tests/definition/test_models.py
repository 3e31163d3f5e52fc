"""Models: strict, frozen, and the committed JSON schema matches the code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from release_mgmt.definition.models import ReleaseDefinition, json_schema
from tests.helpers import minimal_definition


def test_models_are_frozen() -> None:
    """A loaded definition cannot be changed by the code that uses it."""
    defn = ReleaseDefinition.model_validate(minimal_definition())
    with pytest.raises(ValidationError):
        defn.name = "other"


def test_validate_key_is_the_yaml_name() -> None:
    """Validation steps are written under `validate` and unknown spellings are rejected."""
    data = minimal_definition()
    data["components"][0]["validation"] = data["components"][0].pop("validate")
    with pytest.raises(ValidationError, match="validation"):
        ReleaseDefinition.model_validate(data)


def test_committed_schema_matches_models(repo: Path) -> None:
    """include/schema/release-definition.schema.json is what `python -m release_mgmt schema` prints."""
    committed = json.loads((repo / "include/schema/release-definition.schema.json").read_text())
    assert committed == json.loads(json.dumps(json_schema()))


def test_committed_directory_schema_matches_the_model(repo: Path) -> None:
    """include/schema/directory.schema.json is what `python -m release_mgmt schema --directory` prints."""
    from release_mgmt.definition.notify_rules import Directory

    committed = json.loads((repo / "include/schema/directory.schema.json").read_text())
    assert committed == {**Directory.model_json_schema(by_alias=True), "title": "release_mgmt notification directory"}


def test_schema_describes_step_union_and_strictness() -> None:
    """Editors get the step types and that unknown keys are not allowed."""
    schema = json_schema()
    assert schema["additionalProperties"] is False
    component = schema["$defs"]["Component"]
    assert "validate" in component["properties"]
    assert schema["$defs"]["CommandStep"]["properties"]["type"]["const"] == "command"
