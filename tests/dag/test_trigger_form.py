"""The manual trigger form submits as it opens: every optional text field (an empty emergency change, a string
parameter whose default is empty) accepts both its default and an emptied field (null), as Airflow's form and
REST API validate it; required fields (a version, an enum, a parameter without a default) stay required."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import ParamValidationError

from release_mgmt.dag.trigger_form import trigger_params
from release_mgmt.definition.loader import load_file
from release_mgmt.planning import plan_release
from tests.helpers import minimal_definition, write_definition


def _form(tmp_path: Path) -> ParamsDict:
    data = minimal_definition(
        "shop",
        parameters={
            "ticket": {"type": "string", "default": "", "description": "Leave empty when there is none."},
            "note": {"type": "string", "default": "n/a"},
            "reason": {"type": "string"},
            "region": {"type": "string", "default": "eu", "enum": ["eu", "us"]},
        },
    )
    data["break_glass"] = {"type": "approval", "users": ["alice", "bob"]}
    loaded = load_file(write_definition(tmp_path, "shop.yaml", data))
    return ParamsDict(trigger_params(plan_release(loaded.definition, "shop.yaml")))


def test_the_form_validates_with_its_own_defaults(tmp_path: Path) -> None:
    """Trigger with nothing changed but the one field without a default: the defaults pass their own schema."""
    form = _form(tmp_path)
    form["reason"] = "weekly release"
    values = form.validate()
    assert values["emergency_change"] in ("", None)
    assert values["ticket"] == ""


@pytest.mark.parametrize("field", ["emergency_change", "ticket"])
def test_an_emptied_optional_text_field_is_accepted(tmp_path: Path, field: str) -> None:
    """The UI sends null for a cleared text field: optional text fields accept it."""
    form = _form(tmp_path)
    form["reason"] = "weekly release"
    form[field] = None
    assert form.validate()[field] is None


def test_required_and_checked_fields_stay_checked(tmp_path: Path) -> None:
    """A version and an enum parameter are still required; a bad emergency change number is still refused."""
    cases = (("version_api", None), ("region", None), ("note", None), ("reason", None), ("emergency_change", "CHG 1;"))
    for field, value in cases:
        form = _form(tmp_path)
        with pytest.raises(ParamValidationError):  # setting a value validates it, as the form's submit does
            form[field] = value


def test_a_version_field_points_to_what_runs_where(tmp_path: Path) -> None:
    """Choosing a version, the ops engineer is one click from what each environment runs now (the console)."""
    form = _form(tmp_path)
    described = form.get_param("version_api").schema.get("description_md") or ""
    assert "[Browse → Releases](/plugin/releases)" in described
