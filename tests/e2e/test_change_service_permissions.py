"""The change service's permission table inside a real Airflow: SimpleAuthManager users of every role, Airflow's
own tokens and the UI's session cookie, release tasks' service tokens (issue 12)."""

from __future__ import annotations

import time

import jwt
import pytest
import requests

from release_mgmt.change_service import permissions as perms
from release_mgmt.change_service.service_token import AUDIENCE, ISSUER, SERVICE_PRINCIPAL
from tests.change_service import matrix

pytestmark = pytest.mark.e2e
AS_ROLE = {"viewer": "victor", "user": "bob", "op": "olga", "admin": "admin", "authorizer": "carol"}


@pytest.fixture
def service(airflow, monkeypatch: pytest.MonkeyPatch) -> matrix.Service:
    monkeypatch.setenv("RELEASE_MGMT_SERVICE_SECRET", airflow.service_secret)  # the test mints release tasks' tokens

    def auth(role: str) -> dict:
        if role == perms.ANONYMOUS:
            return {}
        if role == perms.RELEASE_TASK:
            return matrix.task_headers()
        return {"headers": {"Authorization": f"Bearer {airflow.token(AS_ROLE.get(role, role))}"}}

    return matrix.Service(f"{airflow.url}/change-service", auth)


def test_every_route_and_role_as_the_table_says_inside_airflow(service) -> None:
    """Walks PERMISSIONS against the service mounted in Airflow's API server, with Airflow's users and roles."""
    assert matrix.walk(service) == []


def test_the_ui_session_cookie_signs_a_user_in(airflow, service) -> None:
    """A page of the UI (same origin) is served with the session the user already has: the _token cookie."""
    cookies = {"_token": airflow.token("victor")}
    answer = requests.get(service.url + perms.CHANGES, cookies=cookies, timeout=10)
    assert answer.status_code == 200, answer.text
    refused = requests.post(service.url + perms.CHANGES, json={}, cookies=cookies, timeout=10)
    assert refused.status_code == 403


def test_a_cross_site_post_with_the_session_cookie_is_refused(airflow, service) -> None:
    """What a form on another site could make a signed-in browser send (a form-encoded post, or JSON from another
    origin) is refused before any rule is looked at; the console's own JSON post is not (test_console_browser)."""
    cookies = {"_token": airflow.token("bob")}
    door = service.url + perms.DECIDE.replace("{sys_id}", "0" * 32) + "/approve"
    form = requests.post(door, data={"comment": "ok"}, cookies=cookies, timeout=10)
    assert form.status_code == 403
    assert "a JSON request from this Airflow" in form.text
    elsewhere = requests.post(door, json={}, cookies=cookies, headers={"Origin": "https://evil.example"}, timeout=10)
    assert elsewhere.status_code == 403
    same = requests.post(door, json={}, cookies=cookies, headers={"Origin": airflow.url}, timeout=10)
    assert same.status_code == 404  # past the origin check: no such change


def test_tokens_signed_with_the_wrong_secret_or_for_airflow_are_refused(airflow, service) -> None:
    """Row 5: a service-shaped token signed with Airflow's JWT secret, and an Airflow user's token on a release
    task's route, are refused; so are docs for anonymous callers."""
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": SERVICE_PRINCIPAL,
        "iat": now,
        "exp": now + 60,
        "dag_id": matrix.DAG,
        "run_id": matrix.RUN,
        "task_id": "prod.lock",
    }
    forged = jwt.encode(claims, airflow.jwt_secret, algorithm="HS256")
    answer = requests.post(
        service.url + perms.LOCKS + "/acquire",
        json={"lock": "matrix/prod"},
        headers={"Authorization": f"Bearer {forged}"},
        timeout=10,
    )
    assert answer.status_code == 401, answer.text
    assert "RELEASE_MGMT_SERVICE_SECRET" in answer.json()["error"]["detail"]  # what a worker with another secret sees
    as_admin = service.call("POST", perms.LOCKS + "/acquire", "admin", {"lock": "matrix/prod"})
    assert as_admin.status_code == 403
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert requests.get(service.url + path, timeout=10).status_code == 401


def test_row6_people_cannot_rewrite_changes_inside_airflow(service) -> None:
    """Row 6: an admin cannot retype, cancel or close a change; a viewer cannot open one."""
    change = matrix.change_in_authorize(service)
    path = f"{perms.CHANGES}/{change['sys_id']}"
    for body in ({"type": "standard"}, {"state": "4"}, {"close_code": "successful", "close_notes": "x"}):
        assert service.call("PATCH", path, "admin", body).status_code == 403
    assert service.call("POST", perms.CHANGES, "viewer", {"type": "standard"}).status_code == 403
    assert service.call("GET", path, "viewer").json()["result"]["type"] == "normal"


def test_every_route_and_role_as_the_table_says_with_http_basic(airflow, service) -> None:
    """Issue 18: a ServiceNow client configured for HTTP Basic needs only the URL: each user's Airflow password
    (checked by the auth manager's own token endpoint) signs them in, and the permission table applies unchanged."""

    def basic(role: str) -> dict:
        if role in (perms.ANONYMOUS, perms.RELEASE_TASK):
            return service.auth(role)
        user = AS_ROLE.get(role, role)
        return {"auth": (user, airflow.passwords[user])}

    assert matrix.walk(matrix.Service(service.url, basic)) == []


def test_http_basic_refuses_wrong_passwords_and_cross_site_forms(airflow, service) -> None:
    """A wrong password is 401 in ServiceNow's shape, with no Basic challenge (a browser never offers to remember
    a password for this service); a form posted from another site with remembered Basic credentials is refused."""
    url = service.url + perms.CHANGES
    right = requests.get(url, auth=("victor", airflow.passwords["victor"]), timeout=10)
    assert right.status_code == 200, right.text
    assert "X-Total-Count" in right.headers
    assert f"<{service.url}{perms.CHANGES}?" in right.headers["Link"]  # links keep Airflow's mount path
    made = service.call("POST", perms.CHANGES, perms.RELEASE_TASK, {"short_description": "located"})
    assert made.headers["Location"] == f"{service.url}{perms.CHANGES}/{made.json()['result']['sys_id']}"
    for wrong in (("victor", "not-the-password"), ("nobody", "x"), ("victor", "")):
        refused = requests.get(url, auth=wrong, timeout=10)
        assert refused.status_code == 401
        assert refused.json()["status"] == "failure"
        assert "WWW-Authenticate" not in refused.headers
    door = service.url + perms.DECIDE.replace("{sys_id}", "0" * 32) + "/approve"
    bob = ("bob", airflow.passwords["bob"])
    form = requests.post(door, data={"comment": "ok"}, auth=bob, timeout=10)
    assert form.status_code == 403
    assert "a JSON request from this Airflow" in form.text
    elsewhere = requests.post(door, json={}, auth=bob, headers={"Origin": "https://evil.example"}, timeout=10)
    assert elsewhere.status_code == 403
    assert requests.post(door, json={}, auth=bob, timeout=10).status_code == 404  # a script's JSON: past the check
