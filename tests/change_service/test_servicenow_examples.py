"""ServiceNow's documentation examples replayed against the built-in service over real HTTP (issue 18).

Each file in servicenow_examples/ is one request and the response ServiceNow's documentation shows for it
(``source``, ``example``): transcribed, abridged to the fields the built-in service holds, with
``change_request`` where the documentation's example used another table. The replay checks the status, the
headers named, and the body's shape: every key the example shows is there with the same kind of value (a text, a
``{"link", "value"}`` reference, a ``{"display_value", "value"}`` pair, a list); the values a client branches on
(states, types, labels, error messages) are compared exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from release_mgmt.change_service import permissions as perms
from release_mgmt.change_service.app import create_app
from release_mgmt.change_service.callers import basic_auth
from release_mgmt.change_service.store import ChangeStore
from tests.servers import serve_app

EXAMPLES = sorted((Path(__file__).parent / "servicenow_examples").glob("*.json"))
USERS = {"bot": ("bot-pw", "release_task"), "cab": ("cab-pw", "viewer"), "admin": ("admin-pw", "admin")}
AUTH = {"bot": ("bot", "bot-pw"), "admin": ("admin", "admin-pw"), "nobody": None}
#: values a client branches on: compared exactly, not only by kind
EXACT = {"state", "type", "approval", "available_states", "state_label", "message", "detail", "status", "source_table"}


def shape(want: Any, got: Any, where: str = "body") -> list[str]:
    """Where ``got`` differs in shape from ``want`` (empty when it does not)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{where}: want an object, got {got!r}"]
        problems = []
        for key, value in want.items():
            if key not in got:
                problems.append(f"{where}.{key}: missing")
            elif (key in EXACT and not isinstance(value, dict | list)) or key == "available_states":
                problems += [] if got[key] == value else [f"{where}.{key}: want {value!r}, got {got[key]!r}"]
            else:
                problems += shape(value, got[key], f"{where}.{key}")
        return problems
    if isinstance(want, list):
        if not isinstance(got, list) or bool(want) != bool(got):
            return [f"{where}: want a list like {want!r}, got {got!r}"]
        return shape(want[0], got[0], f"{where}[0]") if want else []
    if want is None or got is None:
        return [] if want is got else [f"{where}: want {want!r}, got {got!r}"]
    return [] if type(got) is type(want) else [f"{where}: want a {type(want).__name__}, got {got!r}"]


@pytest.fixture
def service(tmp_path: Path):
    store = ChangeStore(f"sqlite:///{tmp_path / 'changes.db'}")
    with serve_app(create_app(store, basic_auth(USERS))) as url:
        yield url


def _setup(url: str, kind: str | None) -> dict[str, str]:
    if kind is None:
        return {}
    body = {
        "short_description": "Release shop 1.3.0 to prod",
        "correlation_id": "shop:run1:prod",
        "assignment_group": "287ebd7da9fe198100f92cc8d1d2154e",
        "requested_by": "alice",
        "u_authorizers": "cab",
    }
    made = requests.post(url + perms.CHANGES, json=body, auth=AUTH["bot"], timeout=10).json()["result"]
    if kind == "change_in_authorize":
        for state in ("-4", "-3"):
            requests.patch(
                f"{url}{perms.CHANGES}/{made['sys_id']}", json={"state": state}, auth=AUTH["bot"], timeout=10
            )
    return {"{sys_id}": made["sys_id"]}


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, real in names.items():
            value = value.replace(name, real)
        return value
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    return value


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_the_documentations_example_gets_its_answer(service, example: Path) -> None:
    case = json.loads(example.read_text())
    names = _setup(service, case.get("setup"))
    sent, want = _fill(case["request"], names), case["response"]
    answer = requests.request(
        sent["method"],
        service + sent["path"],
        params=sent.get("params"),
        json=sent.get("json"),
        auth=AUTH[case.get("as", "bot")],
        timeout=10,
    )
    assert answer.status_code == want["status"], answer.text
    assert [h for h in want["headers"] if h not in answer.headers] == []
    if want["body"] is None:
        assert answer.content == b""
        return
    assert answer.headers["Content-Type"].startswith("application/json")
    assert shape(want["body"], answer.json()) == []


def test_the_shape_check_sees_a_wrong_answer() -> None:
    """The comparison is not vacuous: a plain text where a reference belongs, a missing key, a wrong state."""
    want = {"result": [{"opened_by": {"link": "x", "value": "y"}, "state": "-5", "number": "CHG1"}]}
    assert shape(want, {"result": [{"opened_by": "y", "state": "-5", "number": "CHG1"}]})
    assert shape(want, {"result": [{"opened_by": {"link": "a", "value": "b"}, "state": "-4", "number": "C"}]})
    assert shape(want, {"result": []})
    assert not shape(want, {"result": [{"opened_by": {"link": "a", "value": "b"}, "state": "-5", "number": "C"}]})
