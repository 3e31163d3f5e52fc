"""The change service's permission table and the attacks it stops, over real HTTP on a real database.

Every call an attacker with an ordinary account tried (issue 12, rows 1, 2, 5, 6, 7, 8, 9) is replayed
here; test_change_service_permissions.py replays the matrix inside a real Airflow.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
import requests

from release_mgmt.change_service import permissions as perms
from release_mgmt.change_service.app import create_app
from release_mgmt.change_service.callers import basic_auth
from release_mgmt.change_service.service_token import AUDIENCE, ISSUER, SERVICE_PRINCIPAL, TaskIdentity, make_token
from release_mgmt.change_service.store import ChangeStore
from release_mgmt.hooks.servicenow import ServiceNowChangeHook
from tests.change_service import matrix
from tests.servers import serve_app

SECRET = "matrix-service-secret-" + "0" * 32
USERS = {
    "vic": ("vic-pw", "viewer"),
    "uma": ("uma-pw", "user"),
    "otto": ("otto-pw", "op"),
    "ada": ("ada-pw", "admin"),
    "alice": ("alice-pw", "user"),
    "carol": ("carol-pw", "viewer"),
    "dave": ("dave-pw", "user"),
    "release_mgmt": ("rm-pw", "viewer"),  # a human who took the principal's old name
}
AS_ROLE = {"viewer": "vic", "user": "uma", "op": "otto", "admin": "ada", "authorizer": "carol"}


def _auth(role: str) -> dict:
    if role == perms.ANONYMOUS:
        return {}
    if role == perms.RELEASE_TASK:
        return matrix.task_headers()
    user = AS_ROLE.get(role, role)
    return {"auth": (user, USERS[user][0])}


def _serve(store: ChangeStore, triggerer: str | None = None):
    app = create_app(store, basic_auth(USERS))
    app.state.run_triggerer = lambda dag_id, run_id: triggerer
    return serve_app(app)


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RELEASE_MGMT_SERVICE_SECRET", SECRET)
    store = ChangeStore(f"sqlite:///{tmp_path / 'changes.db'}")
    with _serve(store, triggerer="dave") as url:
        yield matrix.Service(url, _auth)


def test_every_route_and_role_as_the_table_says(service) -> None:
    """Walks PERMISSIONS: allowed roles get through, every other role gets 403, anonymous 401."""
    assert matrix.walk(service) == []


def test_readme_shows_the_enforced_table() -> None:
    """The README's permission table is the one the code enforces."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert perms.table_markdown() in readme


@pytest.mark.parametrize("role", ["viewer", "admin", "alice", "dave"])
def test_row1_viewers_admins_requester_and_triggerer_cannot_authorize(service, role) -> None:
    """Row 1: a viewer, an admin, the requester (alice) and the run's triggering user (dave) get 403; nothing moves."""
    change = matrix.change_in_authorize(service)
    answer = service.call("POST", f"{perms.DECIDE.format(sys_id=change['sys_id'])}/approve", role, {"comment": "ok"})
    assert answer.status_code == 403, answer.text
    assert service.call("GET", f"{perms.CHANGES}/{change['sys_id']}", "viewer").json()["result"]["state"] == "-3"


def test_only_eligible_authorizers_hold_approval_records_and_the_quorum_counts(service) -> None:
    """Approval records go to the authorizers minus the requester; two of them needed, reject needs a comment."""
    change = matrix.change_in_authorize(service, u_authorizers="alice,carol,dave,erin", u_min_authorizations="2")
    rows = service.call("GET", perms.APPROVALS, "viewer", sysparm_query=f"sysapproval={change['sys_id']}").json()
    assert sorted(r["approver"]["value"] for r in rows["result"]) == ["carol", "dave", "erin"]  # references
    door = perms.DECIDE.format(sys_id=change["sys_id"])
    assert service.call("POST", f"{door}/reject", "authorizer", {"comment": " "}).status_code == 400
    first = service.call("POST", f"{door}/approve", "authorizer", {"comment": "fine"}).json()["result"]
    assert (first["state"], first["approval"]) == ("-3", "requested")  # 1 of 2
    again = service.call("POST", f"{door}/approve", "authorizer", {"comment": "twice"})
    assert again.status_code == 409
    record = matrix.approval_of(service, change, "carol")
    assert (record["state"], record["comments"]) == ("approved", "fine")


def test_row2_people_cannot_open_or_advance_changes(service) -> None:
    """Row 2: a viewer's pre-approved change under a run's correlation id is refused, and so is moving one."""
    body = {"type": "standard", "correlation_id": f"release_mgmt:matrix:prod:{matrix.RUN}"}
    assert service.call("POST", perms.CHANGES, "viewer", body).status_code == 403
    change = matrix.change_in_authorize(service)
    scheduled = service.call("PATCH", f"{perms.CHANGES}/{change['sys_id']}", "admin", {"state": "-2"})
    assert scheduled.status_code == 403
    assert service.call("GET", perms.CHANGES, "viewer").json()["result"][0]["sys_created_by"] == "release_mgmt[service]"


def test_row2_a_release_task_cannot_skip_authorize(service) -> None:
    """Even the release task cannot move a change out of Authorize by writing its state: only approvals do."""
    change = matrix.change_in_authorize(service)
    moved = service.call("PATCH", f"{perms.CHANGES}/{change['sys_id']}", perms.RELEASE_TASK, {"state": "-2"})
    assert moved.status_code == 403
    assert "approval records decide" in moved.json()["error"]["detail"]


def _forge(claims: dict, secret: str = SECRET) -> dict:
    return {"headers": {"Authorization": "Bearer " + jwt.encode(claims, secret, algorithm="HS256")}}


def test_row5_forged_long_lived_foreign_and_expired_tokens_are_refused(service) -> None:
    """Row 5: a token for 'bob', one valid 10 years, one for another audience, one signed with another secret,
    an expired one: none is a release task, none decides, none takes a lock."""
    now = int(time.time())
    good = {"iss": ISSUER, "aud": AUDIENCE, "sub": SERVICE_PRINCIPAL, "iat": now, "exp": now + 60}
    run = {"dag_id": matrix.DAG, "run_id": matrix.RUN, "task_id": "prod.lock"}
    forged = [
        {**good, **run, "sub": "bob"},
        {**good, **run, "exp": now + 10 * 365 * 86400},
        {**good, **run, "aud": "urn:airflow.apache.org:task"},
        {**good, "iat": now - 600, "exp": now - 300, **run},
        {**good},  # bound to no run
    ]
    change = matrix.change_in_authorize(service)
    for claims in forged:
        for method, path, body in (
            ("POST", f"{perms.DECIDE.format(sys_id=change['sys_id'])}/approve", {"comment": "ok"}),
            ("POST", perms.LOCKS + "/acquire", {"lock": "matrix/prod"}),
            ("GET", perms.CHANGES, None),
        ):
            answer = requests.request(method, service.url + path, json=body, timeout=10, **_forge(claims))
            assert answer.status_code == 401, (claims, path, answer.text)
    other_secret = requests.get(service.url + perms.CHANGES, timeout=10, **_forge({**good, **run}, "x" * 40))
    assert other_secret.status_code == 401
    assert "the same RELEASE_MGMT_SERVICE_SECRET" in other_secret.json()["error"]["detail"]


def test_row5_a_human_named_like_the_principal_is_just_a_user(service) -> None:
    """Row 5: a user called release_mgmt takes no lock and writes no change."""
    for method, path, body in (
        ("POST", perms.LOCKS + "/acquire", {"lock": "matrix/prod"}),
        ("POST", perms.CHANGES, {}),
    ):
        assert service.call(method, path, "release_mgmt", body).status_code == 403


def test_row5_tokens_live_minutes_and_name_their_task(monkeypatch) -> None:
    """Row 5: a token names its DAG run and task, and asking for a long one makes a token the service refuses."""
    monkeypatch.setenv("RELEASE_MGMT_SERVICE_SECRET", SECRET)
    from release_mgmt.change_service.service_token import MAX_TTL_SECONDS, check_token

    identity = TaskIdentity("release_x", "run 1", "prod.lock")
    assert check_token(make_token(identity)) == identity
    assert check_token(make_token(identity, ttl=MAX_TTL_SECONDS + 1)) is None
    assert check_token(make_token(identity, now=time.time() - 3600)) is None


@pytest.mark.parametrize("secret", ["", "change-me-too", "short"])
def test_row5_weak_secrets_are_refused(monkeypatch, secret) -> None:
    """Row 5: an empty, default or short secret signs nothing."""
    from release_mgmt.change_service.service_token import ServiceSecretError

    monkeypatch.setenv("RELEASE_MGMT_SERVICE_SECRET", secret)
    with pytest.raises(ServiceSecretError, match="openssl rand -hex 32"):
        make_token(TaskIdentity("d", "r", "t"))


def test_row6_humans_cannot_rewrite_and_tasks_cannot_touch_other_runs(service) -> None:
    """Row 6: normal->standard by a user, canceling another run's change, rewriting a closed change: all refused."""
    change = matrix.change_in_authorize(service)
    path = f"{perms.CHANGES}/{change['sys_id']}"
    assert service.call("PATCH", path, "user", {"type": "standard"}).status_code == 403
    retyped = service.call("PATCH", path, perms.RELEASE_TASK, {"type": "standard"})
    assert (retyped.status_code, retyped.json()["error"]["message"]) == (403, "Field is read-only")
    other_run = requests.patch(
        service.url + path, json={"state": "4"}, timeout=10, **matrix.task_headers(run_id="manual__other")
    )
    assert other_run.status_code == 403
    other_dag = requests.get(service.url + path, timeout=10, **matrix.task_headers(dag_id="release_other"))
    assert other_dag.status_code == 404  # another release's task cannot even read it
    service.call("POST", f"{perms.DECIDE.format(sys_id=change['sys_id'])}/approve", "authorizer", {"comment": "ok"})
    for state in ("-1", "0"):
        service.call("PATCH", path, perms.RELEASE_TASK, {"state": state})
    closed = {"state": "3", "close_code": "successful", "close_notes": "fine"}
    assert service.call("PATCH", path, perms.RELEASE_TASK, closed).status_code == 200
    rewrite = service.call(
        "PATCH", path, perms.RELEASE_TASK, {"close_notes": "rewritten", "close_code": "unsuccessful"}
    )
    assert (rewrite.status_code, rewrite.json()["error"]["message"]) == (403, "Record is read-only")
    assert service.call("GET", path, "viewer").json()["result"]["close_notes"] == "fine"


BAD_VALUES = [
    ("GET", perms.CHANGES + "?sysparm_query=state=abc", None),
    ("GET", perms.CHANGES + "?sysparm_query=state=Implement", None),
    ("GET", perms.CHANGES + "?sysparm_query=nosuchfield=1", None),
    ("GET", perms.CHANGES + "?sysparm_query=correlation_id=a%00b", None),
    ("GET", perms.CHANGES + "?sysparm_limit=lots", None),
    ("PATCH", "{change}", {"state": "Implement"}),
    ("PATCH", "{change}", {"state": None}),
    ("PATCH", "{change}", {"state": [-1]}),
    ("PATCH", "{change}", {"state": True}),
    ("PATCH", "{change}", {"short_description": "x" * 161}),
    ("PATCH", "{change}", {"description": "nul\x00byte"}),
    ("PATCH", "{change}", {"work_notes": {"nested": "object"}}),
    ("POST", perms.CHANGES, {"correlation_id": "c" * 101}),
    ("POST", perms.CHANGES, {"u_min_authorizations": "many"}),
]


def _assert_bad_values_are_400(service) -> None:
    change = matrix.change_in_authorize(service)
    for method, path, body in BAD_VALUES:
        target = path.replace("{change}", f"{perms.CHANGES}/{change['sys_id']}")
        answer = service.call(method, target, perms.RELEASE_TASK, body)
        assert answer.status_code == 400, (method, path, body, answer.status_code, answer.text)
        assert set(answer.json()) == {"error", "status"}
        assert answer.json()["status"] == "failure"
        assert set(answer.json()["error"]) == {"message", "detail"}


def test_row7_bad_values_are_400_on_sqlite(service) -> None:
    """Row 7: labels, nulls, lists, over-long text, NUL bytes and bad queries: 400 in ServiceNow's shape."""
    _assert_bad_values_are_400(service)


def test_row7_bad_values_are_400_on_postgresql(postgres_server, monkeypatch) -> None:
    """Row 7 on PostgreSQL, where a NUL byte or an over-long value used to drop the connection with a 500."""
    monkeypatch.setenv("RELEASE_MGMT_SERVICE_SECRET", SECRET)
    store = ChangeStore(postgres_server.create_database("permissions_bad_values"))
    with _serve(store) as url:
        service = matrix.Service(url, _auth)
        _assert_bad_values_are_400(service)
        assert service.call("GET", perms.CHANGES, "viewer").status_code == 200  # the service still answers


RUN_IDS = ["manual__INC-4711", "manual__LIKE_IN", "scheduled__2026-01-01T00:00:00+00:00", "a^b^^c", "x=y!=z"]


def _assert_found_by_correlation_id(service, monkeypatch) -> None:
    host, port = service.url.removeprefix("http://").split(":")
    conn = {"conn_type": "http", "host": host, "port": int(port), "login": "uma", "password": "uma-pw"}
    monkeypatch.setenv("AIRFLOW_CONN_SNOW_READER", json.dumps(conn))
    hook = ServiceNowChangeHook("snow_reader", timeout=5, retries=0)
    for run_id in RUN_IDS:
        key = f"release_mgmt:matrix:prod:{run_id}"
        change = matrix.change_in_authorize(service, correlation_id=key)
        found = hook.find(key)
        assert found is not None, run_id
        assert found["sys_id"] == change["sys_id"], run_id


def test_row8_correlation_lookups_work_for_any_run_id(service, monkeypatch) -> None:
    """Row 8: run ids holding IN, LIKE, '+', ':', '=', '!=' or '^' are found by correlation id."""
    _assert_found_by_correlation_id(service, monkeypatch)


def test_row8_correlation_lookups_on_postgresql(postgres_server, monkeypatch) -> None:
    """Row 8 on PostgreSQL."""
    monkeypatch.setenv("RELEASE_MGMT_SERVICE_SECRET", SECRET)
    store = ChangeStore(postgres_server.create_database("permissions_run_ids"))
    with _serve(store) as url:
        _assert_found_by_correlation_id(matrix.Service(url, _auth), monkeypatch)


def test_users_see_only_releases_airflow_lets_them_read(tmp_path, monkeypatch) -> None:
    """Read access follows the auth manager's DAG permission: a user who cannot read the release neither lists,
    reads nor decides its changes (404, as ServiceNow answers for ACL-hidden records)."""
    monkeypatch.setenv("RELEASE_MGMT_SERVICE_SECRET", SECRET)
    everyone = basic_auth(USERS)

    def authenticate(request):
        caller = everyone(request)
        if caller.name == "carol":  # carol may read every DAG but release_matrix
            return perms.Caller(caller.name, caller.role, None, lambda dag_id: dag_id != matrix.DAG)
        return caller

    store = ChangeStore(f"sqlite:///{tmp_path / 'changes.db'}")
    with serve_app(create_app(store, authenticate)) as url:
        service = matrix.Service(url, _auth)
        change = matrix.change_in_authorize(service)
        assert service.call("GET", perms.CHANGES, "authorizer").json()["result"] == []
        assert service.call("GET", f"{perms.CHANGES}/{change['sys_id']}", "authorizer").status_code == 404
        decide = f"{perms.DECIDE.format(sys_id=change['sys_id'])}/approve"
        assert service.call("POST", decide, "authorizer", {"comment": "ok"}).status_code == 404
        query = f"sysapproval={change['sys_id']}"
        assert service.call("GET", perms.APPROVALS, "authorizer", sysparm_query=query).json()["result"] == []
        assert len(service.call("GET", perms.CHANGES, "viewer").json()["result"]) == 1


def test_a_distributed_airflow_without_the_service_secret_serves_nothing(monkeypatch) -> None:
    """Row 5: with tasks on other machines (CeleryExecutor) and no RELEASE_MGMT_SERVICE_SECRET, every call is
    answered 503 naming the setting; a known default secret is refused the same way."""
    from fastapi.testclient import TestClient

    from release_mgmt.change_service.in_airflow import airflow_app

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    monkeypatch.delenv("RELEASE_MGMT_SERVICE_SECRET", raising=False)
    client = TestClient(airflow_app())
    answer = client.get(perms.CHANGES)
    assert answer.status_code == 503
    assert "RELEASE_MGMT_SERVICE_SECRET is not set" in answer.json()["error"]["detail"]
    monkeypatch.setenv("RELEASE_MGMT_SERVICE_SECRET", "change-me-too")
    assert client.get(perms.CHANGES).status_code == 503
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    monkeypatch.delenv("RELEASE_MGMT_SERVICE_SECRET")
    assert client.get(perms.CHANGES).status_code == 401  # one machine: the AIRFLOW_HOME secret serves


def test_row9_docs_need_a_signed_in_caller(service) -> None:
    """Row 9: /docs, /redoc and /openapi.json answer 401 to anonymous callers and 200 to signed-in ones."""
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert requests.get(service.url + path, timeout=10).status_code == 401
        assert service.call("GET", path, "viewer").status_code == 200
    assert "sysapproval_approver" in json.dumps(service.call("GET", "/openapi.json", "viewer").json())
