"""A fuzzer of the change service's inputs: any query text and any JSON body, as any caller, never makes the
service answer 500, and every refusal comes in ServiceNow's error shape. Shrunk failures hypothesis finds
go into REGRESSIONS below, so they are replayed on every run."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from release_mgmt.change_service import permissions as perms
from release_mgmt.change_service import query as query_language
from release_mgmt.change_service.app import create_app
from release_mgmt.change_service.callers import basic_auth
from release_mgmt.change_service.service_token import TaskIdentity, make_token
from release_mgmt.change_service.store import LIFECYCLE, WRITABLE, ChangeStore

SECRET = "fuzz-service-secret-" + "1" * 32
FIELDS = sorted({*WRITABLE, *LIFECYCLE, "work_notes", "sys_id", "number", "approval", "nonsense"})
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
bodies = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6)
OPERATORS = [*query_language.OPERATORS, "NOTLIKE", "SAMEAS", "BETWEEN", "", "=="]
queries = st.lists(
    st.one_of(
        st.text(max_size=40),
        st.builds(
            lambda prefix, f, op, v: f"{prefix}{f}{op}{v}",
            st.sampled_from(["", "OR", "NQ", "ORDERBY", "ORDERBYDESC", "EQ"]),
            st.sampled_from([*FIELDS, "sys_mod_count", "opened_by", "element_id", "sysapproval", "a.b", "Number"]),
            st.sampled_from(OPERATORS),
            st.text(max_size=30),
        ),
    ),
    max_size=6,
).map("^".join)
PATHS = [perms.CHANGES, perms.APPROVALS, perms.JOURNAL, perms.CHANGE_API, "/api/now/v2/table/change_request"]
params = st.fixed_dictionaries(
    {"sysparm_query": queries},
    optional={
        "sysparm_limit": st.one_of(st.integers(), st.text(max_size=5)),
        "sysparm_offset": st.one_of(st.integers(), st.text(max_size=5)),
        "sysparm_display_value": st.sampled_from(["true", "false", "all", "TRUE", "", "yes"]),
        "sysparm_exclude_reference_link": st.sampled_from(["true", "false", "x"]),
        "sysparm_fields": st.text(max_size=40),
    },
)
#: inputs that once broke the service (kept as they were found)
REGRESSIONS = [
    ("GET", perms.CHANGES, {"sysparm_query": "state=abc"}, None),
    ("GET", perms.CHANGES, {"sysparm_query": "correlation_id=manual__INC-4711"}, None),
    ("PATCH", "{change}", None, {"state": None}),
    ("PATCH", "{change}", None, {"state": ["-1"]}),
    ("PATCH", "{change}", None, {"state": "--5"}),
    ("PATCH", "{change}", None, {"state": "\u00b2"}),
    ("POST", perms.CHANGES, None, {"state": "-\u00b2", "u_min_authorizations": "\u00b2"}),
    ("PATCH", "{change}", None, {"description": "\x00"}),
    ("POST", perms.CHANGES, None, {"correlation_id": "x" * 101}),
    ("POST", perms.CHANGES, None, b'{"description": "\\ud800", "short_description": "a\\udfff"}'),
    ("PATCH", "{change}", None, b'{"work_notes": "\\ud800"}'),
    ("POST", perms.LOCKS + "/acquire", None, b'{"lock": "shop/\\ud800"}'),
    ("POST", perms.FENCES + "/hold", None, b'{"component": "\\ud800", "seconds": 30}'),
    ("PUT", perms.GATES + "/progress", None, b'{"deadline": "\\ud800", "votes": [{"user": "\\ud800"}], "refused": []}'),
    ("GET", perms.CHANGES + "?sysparm_query=short_description%3D%ED%A0%80", None, None),
    ("GET", perms.CHANGES, {"sysparm_limit": "\u00b2"}, None),
    ("GET", perms.CHANGES, {"sysparm_offset": "9" * 5000}, None),
    ("GET", perms.APPROVALS + "?sysparm_query=approverLIKE%FF%FE", None, None),
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The service on SQLite, then on PostgreSQL (a stricter database: lengths, encodings, collations)."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("RELEASE_MGMT_SERVICE_SECRET", SECRET)
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_server").create_database("fuzz_table_api")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'changes.db'}"
    store = ChangeStore(url)
    client = TestClient(create_app(store, basic_auth({"vic": ("pw", "viewer")})), raise_server_exceptions=False)
    token = make_token(TaskIdentity("release_fuzz", "run", "prod.change_open"), ttl=300)
    client.headers["Authorization"] = f"Bearer {token}"
    created = client.post(perms.CHANGES, json={"type": "normal", "u_authorizers": "a,b"}).json()["result"]
    client.change_path = f"{perms.CHANGES}/{created['sys_id']}"
    yield client
    monkeypatch.undo()


def _check(client: TestClient, method: str, path: str, params: dict | None, body: object) -> None:
    raw: dict[str, Any] = (
        {"content": body, "headers": {"Content-Type": "application/json"}} if isinstance(body, bytes) else {}
    )
    answer = client.request(
        method, path.replace("{change}", client.change_path), params=params, **(raw or {"json": body})
    )
    assert answer.status_code < 500, (method, path, params, body, answer.text)
    if answer.status_code >= 400:
        payload = answer.json()
        assert payload["status"] == "failure"
        assert set(payload["error"]) == {"message", "detail"}


@pytest.mark.parametrize(("method", "path", "params", "body"), REGRESSIONS)
def test_known_bad_inputs(client, method, path, params, body) -> None:
    """Every input that once broke the service is refused cleanly."""
    _check(client, method, path, params, body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), params=params)
def test_any_query_is_answered_cleanly(client, path, params) -> None:
    """Any encoded query -- every operator, ^OR, ^NQ, ORDERBY, unknown fields and operators -- with any paging
    and display parameters, on every table: a result or a 400, never a 500."""
    _check(client, "GET", path, params, None)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["POST", "PATCH", "PUT"]), body=bodies)
def test_any_body_is_answered_cleanly(client, method, body) -> None:
    """Any JSON body on create or update: stored, or refused with ServiceNow's error shape; never a 500."""
    _check(client, method, perms.CHANGES if method == "POST" else "{change}", None, body)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["normal", "emergency", "standard/x"]), body=bodies)
def test_any_body_on_the_change_management_api_is_answered_cleanly(client, kind, body) -> None:
    _check(client, "POST", f"{perms.CHANGE_API}/{kind}", None, body)
