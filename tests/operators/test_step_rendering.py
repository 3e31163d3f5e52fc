"""How a step's strings render: an optional text parameter left empty (null in the trigger form) renders as an
empty text, in shell strings (an empty variable) and in every other templated field alike, never as 'None'."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from release_mgmt.operators.validate import ValidateOperator


def _rendered(note: Any) -> dict[str, Any]:
    steps = [
        {
            "type": "http_check",
            "url": "http://127.0.0.1:9/health?note={{ params.note }}",
            "body_contains": "[{{ params.note }}]",
        },
        {"type": "command", "command": "echo {{ params.note }}"},
    ]
    task = ValidateOperator(
        task_id="validate_api",
        release="shop",
        components=["api"],
        environments=["prod"],
        environment="prod",
        component="api",
        steps=steps,
        variables={},
        workdir=".",
    )
    ti = SimpleNamespace(xcom_pull=lambda **_: "", dag_id="release_shop", task_id="prod.validate_api")
    context: Any = {"params": {"note": note, "version_api": "1.2.3"}, "run_id": "r1", "ti": ti}
    task.render_template_fields(context)
    return {"check": task.steps[0], "command": task.steps[1]["command"]}


def test_an_empty_optional_parameter_renders_empty() -> None:
    """null and "" render the same: nothing."""
    for empty in (None, ""):
        rendered = _rendered(empty)
        assert rendered["check"]["url"] == "http://127.0.0.1:9/health?note="
        assert rendered["check"]["body_contains"] == "[]"
        assert rendered["command"] == 'echo "${RELEASE_PARAM_NOTE}"'


def test_a_given_parameter_renders_as_given() -> None:
    """A value is rendered in ordinary fields and stays a quoted variable reference in shell strings."""
    rendered = _rendered("ticket-7")
    assert rendered["check"]["body_contains"] == "[ticket-7]"
    assert rendered["command"] == 'echo "${RELEASE_PARAM_NOTE}"'
