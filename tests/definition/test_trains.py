"""Train files checked against the releases that exist: every problem with file, line and key path (golden
files beside this test), one broken train never hiding another, and the committed JSON schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from release_mgmt.definition.models import ReleaseDefinition
from release_mgmt.definition.trains import (
    TrainDefinition,
    _as_release_problems,
    json_schema,
    load_train,
    load_trains,
    member_order,
    train_problems,
)
from release_mgmt.errors import DefinitionError

HERE = Path(__file__).parent / "invalid_trains"
REPO = Path(__file__).resolve().parents[2]


def release(name: str, environments: tuple[str, ...] = ("dev", "staging", "prod")) -> ReleaseDefinition:
    return ReleaseDefinition.model_validate(
        {
            "name": name,
            "owner": "team",
            "policy": {"require_rollback": False},
            "components": [{"name": "api", "version": "1.0.0", "deploy": {"type": "command", "command": "true"}}],
            "environments": [{"name": e} for e in environments],
        }
    )


RELEASES = {
    "identity": release("identity"),
    "payments": release("payments"),
    "web": release("web"),
    "shortcut": release("shortcut", ("dev", "prod")),
}


@pytest.mark.parametrize("case", ["bad_members", "bad_order", "bad_keys", "bad_controls"])
def test_a_bad_train_names_file_line_key_path_and_fix(case: str) -> None:
    """Unknown releases, cycles, unknown dependencies, duplicates, missing or reordered environments, pins of
    unknown components, unknown keys: each problem one line, exactly as the golden file says."""
    with pytest.raises(DefinitionError) as caught:
        load_train(HERE / f"{case}.yaml", RELEASES, display=f"{case}.yaml")
    assert "\n".join(caught.value.lines()) + "\n" == (HERE / f"{case}.expected").read_text()


def test_one_broken_train_never_hides_another(tmp_path: Path) -> None:
    """A folder with a broken file, a duplicate name and a good train: the good one loads, each other is named."""
    good = {"name": "q4", "owner": "o", "members": [{"release": "web"}, {"release": "identity", "after": ["web"]}]}
    good["environments"] = [{"name": "dev"}, {"name": "prod"}]
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(good))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(good))
    (tmp_path / "c.yaml").write_text("name: [unclosed\n")
    report = load_trains(tmp_path, RELEASES)
    assert [item.train.name for item in report.loaded] == ["q4"]
    assert member_order(report.loaded[0].train) == ["web", "identity"]
    assert sorted(e.file.rsplit("/", 1)[-1] for e in report.errors) == ["b.yaml", "c.yaml"]
    assert "already declared" in report.errors[0].render() or "already declared" in report.errors[1].render()


def test_committed_train_schema_matches_the_model() -> None:
    """include/schema/train.schema.json is what `schema --train` writes."""
    committed = json.loads((REPO / "include/schema/train.schema.json").read_text())
    assert committed == json.loads(json.dumps(json_schema(), sort_keys=True))


def test_readme_train_example_is_a_valid_train() -> None:
    """The README's train validates against the model (its members exist in the test's releases)."""
    section = (REPO / "README.md").read_text().split("### Release trains", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    data = yaml.safe_load(block)
    data["approver_groups"] = {"release-managers": ["bob", "carol"]}
    train = TrainDefinition.model_validate(data)
    assert train_problems(train, RELEASES) == []
    assert _as_release_problems(train) == []
    assert member_order(train) == ["identity", "payments", "web"]
