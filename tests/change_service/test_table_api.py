"""The Table API and the Change Management API as a ServiceNow client uses them (issue 18), over real HTTP on a
real database: paging with headers, display values and reference links, PUT and DELETE, ignored unknown fields,
work notes and approval records as tables, ServiceNow's error bodies, and bad input on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
import requests
from sqlalchemy.orm import Session

from release_mgmt.change_service import permissions as perms
from release_mgmt.change_service.app import create_app
from release_mgmt.change_service.callers import basic_auth
from release_mgmt.change_service.records import ChangeRequest
from release_mgmt.change_service.store import ChangeStore
from tests.servers import serve_app

TABLE, APPROVALS, JOURNAL, API = perms.CHANGES, perms.APPROVALS, perms.JOURNAL, perms.CHANGE_API
USERS = {"bot": ("bot-pw", "release_task"), "cab": ("cab-pw", "viewer"), "ada": ("ada-pw", "admin")}
BOT, CAB, ADA = ("bot", "bot-pw"), ("cab", "cab-pw"), ("ada", "ada-pw")


def _serve(store: ChangeStore):
    return serve_app(create_app(store, basic_auth(USERS)))


@pytest.fixture
def service(tmp_path: Path):
    store = ChangeStore(f"sqlite:///{tmp_path / 'changes.db'}")
    with _serve(store) as url:
        yield url, store


def call(method: str, url: str, auth=BOT, **kwargs) -> requests.Response:
    return requests.request(method, url, auth=auth, timeout=30, **kwargs)


def create(url: str, **fields: str) -> requests.Response:
    body = {"short_description": "Release shop 1.3 to prod", "u_authorizers": "cab", **fields}
    return call("POST", url + TABLE, json=body)


def _link_targets(header: str) -> dict[str, str]:
    return {rel: target for target, rel in re.findall(r'<([^>]+)>;rel="(\w+)"', header)}


def test_2500_records_page_by_page_each_once_in_order(service) -> None:
    """sysparm_offset/sysparm_limit pages, followed by their Link rel="next", return every record once, in the
    order asked; X-Total-Count is the number of matches on every page."""
    url, store = service
    with Session(store.engine) as session, session.begin():
        for n in range(2500):
            session.add(
                ChangeRequest(
                    sys_id=uuid.uuid4().hex,
                    number=f"CHG{n + 1:07d}",
                    short_description=f"change {n}",
                    sys_created_on="2026-11-28 10:00:00",
                    sys_updated_on="2026-11-28 10:00:00",
                )
            )
    seen: list[str] = []
    params: dict[str, str] | None = {
        "sysparm_query": "ORDERBYnumber",
        "sysparm_limit": "300",
        "sysparm_fields": "number",
    }
    target = url + TABLE
    pages = 0
    while target:
        answer = call("GET", target, params=params)
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Total-Count"] == "2500"
        links = _link_targets(answer.headers["Link"])
        assert {"first", "last"} <= set(links)
        assert ("prev" in links) == (pages > 0)
        seen += [r["number"] for r in answer.json()["result"]]
        target, params, pages = links.get("next", ""), None, pages + 1
    assert pages == 9
    assert seen == [f"CHG{n:07d}" for n in range(1, 2501)]
    last = call("GET", url + TABLE, params={"sysparm_offset": "2400", "sysparm_limit": "300"})
    assert len(last.json()["result"]) == 100
    assert "next" not in _link_targets(last.headers["Link"])


def test_counts_and_pages_hold_only_what_the_caller_may_read(tmp_path: Path) -> None:
    """A user who may read one release sees its changes only, and X-Total-Count counts only those."""
    store = ChangeStore(f"sqlite:///{tmp_path / 'changes.db'}")
    for n in range(6):
        store.create({"u_airflow_dag_id": f"release_{n % 2}", "short_description": str(n)}, "bot")
    everyone = basic_auth(USERS)

    def authenticate(request):
        caller = everyone(request)
        return perms.Caller(caller.name, caller.role, None, lambda dag_id: dag_id == "release_1")

    with serve_app(create_app(store, authenticate)) as url:
        answer = call("GET", url + TABLE, auth=CAB, params={"sysparm_limit": "2"})
        assert answer.headers["X-Total-Count"] == "3"
        assert [r["short_description"] for r in answer.json()["result"]] == ["1", "3"]


def test_a_created_record_says_where_it_lives_and_who_did_what(service) -> None:
    """201 with Location; opened_by is the creator as a reference; sys_updated_by and sys_mod_count follow every
    update; unknown and system fields in a body are ignored, as ServiceNow ignores them."""
    url, _ = service
    answer = create(url, colour="blue", approval="approved", number="CHG9999999", requested_by="alice")
    assert answer.status_code == 201, answer.text
    record = answer.json()["result"]
    assert answer.headers["Location"] == f"{url}{TABLE}/{record['sys_id']}"
    assert call("GET", answer.headers["Location"]).json()["result"]["number"] == "CHG0000001"
    assert "colour" not in record
    assert (record["approval"], record["number"]) == ("not requested", "CHG0000001")
    assert record["opened_by"] == {"link": f"{url}/api/now/table/sys_user/bot", "value": "bot"}
    assert record["requested_by"]["value"] == "alice"
    assert record["u_requested_by"] == "alice"
    assert (record["sys_updated_by"], record["sys_mod_count"], record["assignment_group"]) == ("bot", "0", "")
    put = call("PUT", answer.headers["Location"], json={"state": "-4", "approval": "approved", "colour": "red"})
    assert put.status_code == 200, put.text
    moved = put.json()["result"]
    assert (moved["state"], moved["approval"], moved["sys_mod_count"]) == ("-4", "not requested", "1")


def test_versioned_urls_are_the_same_api(service) -> None:
    """/api/now/v1/table/... and /api/now/v2/table/... are ServiceNow's versioned URLs of the same tables."""
    url, _ = service
    made = call("POST", url + "/api/now/v2/table/change_request", json={"short_description": "v2"})
    assert made.status_code == 201, made.text
    got = call("GET", f"{url}/api/now/v1/table/change_request/{made.json()['result']['sys_id']}")
    assert got.json()["result"]["short_description"] == "v2"
    assert call("GET", url + "/api/now/v3/table/change_request").status_code == 404
    assert (
        call("GET", f"{url}/api/sn_chg_rest/v1/change/{made.json()['result']['sys_id']}/nextstates").status_code == 200
    )


def test_display_values_reference_links_and_fields(service) -> None:
    url, _ = service
    sys_id = create(url, assignment_group="cab-team")
    record = f"{url}{TABLE}/{sys_id.json()['result']['sys_id']}"

    def shown(**params: str) -> dict:
        return call("GET", record, params=params).json()["result"]

    labels = shown(sysparm_display_value="true", sysparm_fields="state,type,assignment_group,number")
    assert labels == {
        "state": "New",
        "type": "Normal",
        "assignment_group": {"link": f"{url}/api/now/table/sys_user_group/cab-team", "display_value": "cab-team"},
        "number": "CHG0000001",
    }
    pairs = shown(sysparm_display_value="all", sysparm_fields="state,opened_by,nonsense,cmdb_ci")
    assert pairs == {
        "state": {"display_value": "New", "value": "-5"},
        "opened_by": {"display_value": "bot", "value": "bot", "link": f"{url}/api/now/table/sys_user/bot"},
        "cmdb_ci": {"display_value": "", "value": ""},  # an empty reference links nowhere
    }
    plain = shown(sysparm_exclude_reference_link="true", sysparm_fields="assignment_group,approval")
    assert plain == {"assignment_group": "cab-team", "approval": "not requested"}
    assert shown(sysparm_display_value="true", sysparm_exclude_reference_link="true", sysparm_fields="approval") == {
        "approval": "Not Yet Requested"
    }


def test_delete_only_by_an_admin_and_only_while_new(service) -> None:
    """DELETE: 204 for an admin on a change still New; a change someone assessed or decided is kept (403);
    viewers and release tasks may not delete (403)."""
    url, _ = service
    fresh = create(url).json()["result"]["sys_id"]
    moved = create(url, correlation_id="2").json()["result"]["sys_id"]
    call("PATCH", f"{url}{TABLE}/{moved}", json={"state": "-4"})
    assert call("DELETE", f"{url}{TABLE}/{fresh}", auth=CAB).status_code == 403
    assert call("DELETE", f"{url}{TABLE}/{fresh}", auth=BOT).status_code == 403
    kept = call("DELETE", f"{url}{TABLE}/{moved}", auth=ADA)
    assert kept.status_code == 403
    assert "only a change still New" in kept.json()["error"]["detail"]
    gone = call("DELETE", f"{url}{TABLE}/{fresh}", auth=ADA)
    assert (gone.status_code, gone.content) == (204, b"")
    assert call("GET", f"{url}{TABLE}/{fresh}").status_code == 404
    assert call("DELETE", f"{url}{TABLE}/{fresh}", auth=ADA).status_code == 404


def test_work_notes_and_approvals_are_tables(service) -> None:
    """sys_journal_field holds the work notes (element_id = the change); sysapproval_approver answers queries and
    shows the change's number as the display value of sysapproval."""
    url, _ = service
    change = create(url, u_authorizers="cab,dave", u_min_authorizations="1").json()["result"]
    record = f"{url}{TABLE}/{change['sys_id']}"
    for note in ("first", "second"):
        call("PATCH", record, json={"work_notes": note})
    for state in ("-4", "-3"):
        call("PATCH", record, json={"state": state})
    notes = call(
        "GET",
        url + JOURNAL,
        params={"sysparm_query": f"element_id={change['sys_id']}^element=work_notes^ORDERBYDESCvalue"},
    )
    assert [n["value"] for n in notes.json()["result"]] == ["second", "first"]
    assert notes.headers["X-Total-Count"] == "2"
    assert notes.json()["result"][0]["name"] == "change_request"
    one = call("GET", f"{url}{JOURNAL}/{notes.json()['result'][0]['sys_id']}").json()["result"]
    assert one["value"] == "second"
    assert call("GET", f"{url}{JOURNAL}/x^ORsys_id!=x").status_code == 404  # a path is a sys_id, never a query
    rows = call(
        "GET",
        url + APPROVALS,
        params={"sysparm_query": "approver=cab^ORapprover=dave^state=requested", "sysparm_display_value": "all"},
    ).json()["result"]
    assert sorted(r["approver"]["value"] for r in rows) == ["cab", "dave"]
    assert {r["sysapproval"]["display_value"] for r in rows} == {"CHG0000001"}
    assert {r["state"]["display_value"] for r in rows} == {"Requested"}


def test_the_change_management_api(service) -> None:
    """/api/sn_chg_rest/change: open normal, emergency and standard changes, read them as display value/value
    pairs, list with paging headers, ask for the next states, update."""
    url, _ = service
    normal = call("POST", f"{url}{API}/normal", json={"short_description": "normal", "colour": "x"})
    assert normal.status_code == 200, normal.text
    made = normal.json()["result"]
    assert made["type"] == {"display_value": "Normal", "value": "normal"}
    assert made["state"] == {"display_value": "New", "value": "-5"}
    assert normal.headers["Location"].endswith(f"{TABLE}/{made['sys_id']['value']}")
    emergency = call("POST", f"{url}{API}/emergency", json={"short_description": "now"}).json()["result"]
    standard = call("POST", f"{url}{API}/standard/0f4ac6c4b750230096c3e4f6ee11a9e2", json={}).json()["result"]
    assert (emergency["type"]["value"], standard["type"]["value"], standard["approval"]["value"]) == (
        "emergency",
        "standard",
        "approved",
    )

    def following(sys_id: str) -> list[str]:
        return call("GET", f"{url}{API}/{sys_id}/nextstates").json()["result"]["available_states"]

    assert following(made["sys_id"]["value"]) == ["-4", "4"]
    assert following(emergency["sys_id"]["value"]) == ["-3", "4"]
    assert following(standard["sys_id"]["value"]) == ["-2", "-1", "4"]
    moved = call("PATCH", f"{url}{API}/{made['sys_id']['value']}", json={"state": "-4"})
    assert moved.json()["result"]["state"]["display_value"] == "Assess"
    listed = call("GET", f"{url}{API}", params={"sysparm_query": "type=normal", "sysparm_limit": "1"})
    assert listed.headers["X-Total-Count"] == "1"
    assert listed.json()["result"][0]["number"]["value"] == "CHG0000001"
    assert call("GET", f"{url}{API}/{'0' * 32}").json()["error"]["message"] == "No Record found"
    skipped = call("PATCH", f"{url}{API}/{made['sys_id']['value']}", json={"state": "-1"})
    assert skipped.status_code == 403
    assert "State model" in skipped.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "message"),
    [
        ("GET", TABLE, {"auth": None}, 401, "User Not Authenticated"),
        ("GET", "/api/now/table/incident", {}, 400, "Invalid table incident"),
        ("POST", "/api/now/table/sys_user", {"json": {}}, 400, "Invalid table sys_user"),
        ("DELETE", APPROVALS + "/x", {}, 405, "Method not Supported"),
        ("POST", JOURNAL, {"json": {}}, 405, "Method not Supported"),
        ("GET", TABLE, {"params": {"sysparm_limit": "many"}}, 400, "Invalid parameter"),
        ("GET", TABLE, {"params": {"sysparm_offset": "-1"}}, 400, "Invalid parameter"),
        ("GET", TABLE, {"params": {"sysparm_display_value": "maybe"}}, 400, "Invalid parameter"),
        ("GET", TABLE, {"params": {"sysparm_query": "state<New"}}, 400, "Invalid query"),
        ("GET", TABLE, {"params": {"sysparm_query": "short_descriptionCONTAINSx"}}, 400, "Invalid query"),
        ("GET", TABLE, {"params": {"sysparm_query": "stateLIKE-5"}}, 400, "Invalid query"),
        ("GET", TABLE, {"params": {"sysparm_query": "stateISEMPTYx"}}, 400, "Invalid query"),
        ("GET", TABLE, {"params": {"sysparm_query": "^ORstate=-5"}}, 400, "Invalid query"),
        ("GET", TABLE, {"params": {"sysparm_query": "ORDERBYno such"}}, 400, "Invalid query"),
        ("GET", TABLE, {"params": {"sysparm_query": "ORDERBYcolour"}}, 400, "Invalid query"),
        ("GET", TABLE, {"params": {"sysparm_query": "work_notes=x"}}, 400, "Invalid query"),
        ("GET", TABLE, {"params": {"sysparm_query": "caller.name=x"}}, 400, "Invalid query"),
        ("GET", TABLE, {"params": {"sysparm_query": "stateIN" + ",".join(["1"] * 1001)}}, 400, "Invalid query"),
        ("GET", TABLE, {"params": {"sysparm_query": "^".join(["state=1"] * 101)}}, 400, "Invalid query"),
        ("GET", TABLE, {"params": {"sysparm_query": "x" * 16_001}}, 400, "Invalid value"),
        ("POST", TABLE, {"json": {"short_description": "x" * 161}}, 400, "Invalid value"),
        ("POST", TABLE, {"json": {"description": "x" * 65_537}}, 400, "Invalid value"),
        ("POST", TABLE, {"json": {"work_notes": "x" * 65_537}}, 400, "Invalid value"),
        ("POST", TABLE, {"json": {"state": "New"}}, 400, "Invalid state"),
        ("POST", TABLE, {"json": {"risk": {"a": 1}}}, 400, "Invalid value"),
        ("POST", TABLE, {"json": {"u_min_authorizations": "0"}}, 400, "Invalid value"),
        ("POST", TABLE, {"json": ["not", "an", "object"]}, 400, "Exception while reading request"),
        ("POST", TABLE, {"data": "{not json", "headers": {"Content-Type": "application/json"}}, 400, None),
        ("POST", TABLE, {"json": {"requested_by": "a", "u_requested_by": "b"}}, 400, "Invalid value"),
        ("POST", f"{API}/normal", {"json": {"type": "weird", "description": "\x00"}}, 400, "Invalid value"),
    ],
)
def test_bad_input_is_a_400_in_servicenows_shape_on_sqlite(service, method, path, kwargs, status, message) -> None:
    url, _ = service
    _assert_refused(url, method, path, kwargs, status, message)


def _assert_refused(url: str, method: str, path: str, kwargs: dict, status: int, message: str | None) -> None:
    kwargs = {"auth": BOT, **kwargs}
    answer = requests.request(method, url + path, timeout=30, **kwargs)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error", "status"}
    assert body["status"] == "failure"
    assert set(body["error"]) == {"message", "detail"}
    if message:
        assert body["error"]["message"] == message


def test_bad_input_is_a_400_in_servicenows_shape_on_postgresql(postgres_server) -> None:
    """The same refusals on PostgreSQL, where over-long values and odd characters reach a stricter database."""
    store = ChangeStore(postgres_server.create_database("table_api_bad_input"))
    with _serve(store) as url:
        for case in test_bad_input_is_a_400_in_servicenows_shape_on_sqlite.pytestmark[0].args[1]:
            _assert_refused(url, *case)
        created = create(url, description="é" * 10_000, short_description="^%_'\";--")
        assert created.status_code == 201
        found = call(
            "GET", url + TABLE, params={"sysparm_query": "short_descriptionLIKE%_'\"", "sysparm_fields": "number"}
        )
        assert found.json()["result"] == [{"number": "CHG0000001"}]
