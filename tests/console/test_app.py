"""The console's pages over HTTP (Starlette's client), on Airflow's own metadata database and a real change
database: who may open them, what a broken definition or an unknown id shows, and that hostile text stays text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import HTTPException, Request
from fastapi.testclient import TestClient

from release_mgmt.change_service.store import ChangeStore
from release_mgmt.console.app import PAGES, Settings, Viewer, create_app
from release_mgmt.console.sources import Sources
from tests.helpers import minimal_definition, write_definition

ROLES = {"alice": "user", "bob": "user", "carol": "user", "victor": "viewer", "bot": "release_task"}
NOW = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def console(tmp_path: Path, airflow_db: Path):
    """The console over a folder of definitions (one good, one broken, one the viewer may not read) and a change
    database; the caller names itself in an X-User header (what Airflow's session does in production)."""
    folder = tmp_path / "include" / "releases"
    freeze = {
        "name": "year-end",
        "kind": "freeze",
        "reason": "holidays",
        "timezone": "Europe/Berlin",
        "start": "2026-12-18 18:00",
        "end": "2027-01-04 06:00",
        "environments": ["prod"],
    }
    write_definition(folder, "shop.yaml", minimal_definition("shop", windows=[freeze]))
    write_definition(folder, "secret.yaml", minimal_definition("hidden_one"))
    write_definition(folder, "broken.yaml", minimal_definition("broken_one", owner=""))
    store = ChangeStore(f"sqlite:///{tmp_path / 'changes.db'}")

    async def authenticate(request: Request) -> Viewer:
        name = request.headers.get("X-User", "")
        if name not in ROLES:
            raise HTTPException(401, detail="User Not Authenticated")
        return Viewer(name, ROLES[name], lambda dag_id: dag_id != "release_hidden_one", "token")

    sources = Sources(lambda: folder, lambda: store)
    config = Settings(sources, "/change-service", lambda: "http://127.0.0.1:9", lambda: NOW)
    client = TestClient(create_app(authenticate, config), raise_server_exceptions=True)
    return client, store


def _get(client: TestClient, path: str, user: str | None = "alice"):
    return client.get(path, headers={"X-User": user} if user else {})


def _change(store: ChangeStore, **fields) -> dict:
    body = {
        "short_description": "Release shop 1.3.0 to prod",
        "type": "normal",
        "u_airflow_dag_id": "release_shop",
        "u_airflow_run_id": "manual__1",
        "u_requested_by": "alice",
        "u_authorizers": "alice,bob,carol",
        **fields,
    }
    change = store.create(body, "release_mgmt")
    for state in ("-4", "-3"):
        store.update(change["sys_id"], {"state": state}, "release_mgmt")
    return change


@pytest.mark.parametrize(("path", "what"), PAGES)
def test_every_page_refuses_anonymous_and_release_tasks(console, path: str, what: str) -> None:
    """No session: a 401 page saying to sign in; a release task's identity: 403. Never data, never JSON."""
    client, _ = console
    url = path.format(dag_id="release_shop", run_id="manual__1", sys_id="abc")
    anonymous = _get(client, url, None)
    assert anonymous.status_code == 401, what
    assert "Sign in to Airflow" in anonymous.text
    assert "shop" not in anonymous.text.replace("/dags/release_shop", "")
    assert _get(client, url, "bot").status_code == 403


def test_releases_page_lists_readable_releases_and_broken_files(console) -> None:
    """The good release with its controls, the broken file with its file and key path; not the unreadable one."""
    client, _ = console
    page = _get(client, "/")
    assert page.status_code == 200
    assert 'data-release="shop"' in page.text
    assert "hidden_one" not in page.text
    assert "broken.yaml" in page.text
    assert "owner" in page.text  # the key path of the broken definition's problem
    assert "freeze year-end" in page.text  # prod's controls name the freeze


def test_unknown_ids_give_404_pages(console) -> None:
    """An unknown release, run, change or page: a 404 page naming what was not found, no stack trace."""
    client, _ = console
    unknown = ("/dags/release_nope", "/runs/release_shop/nope", "/changes/0123abc", "/nope", "/dags/release_hidden_one")
    for path in unknown:
        page = _get(client, path)
        assert page.status_code == 404, path
        assert "404" in page.text
        assert "Traceback" not in page.text


def test_broken_release_page_shows_its_errors(console) -> None:
    """The DAG tab of a broken definition shows the file and its problems, not a blank page."""
    client, _ = console
    page = _get(client, "/dags/release_broken_one")
    assert page.status_code == 200
    assert "broken.yaml" in page.text
    assert "owner" in page.text


def test_authorize_buttons_only_for_pending_authorizers(console) -> None:
    """bob (an authorizer) gets Approve/Reject; alice (the requester), victor (a viewer) and carol after she
    answered do not."""
    client, store = console
    change = _change(store, u_min_authorizations="2")
    url = f"/changes/{change['sys_id']}"
    assert 'id="approve"' in _get(client, url, "bob").text
    for user in ("alice", "victor"):
        page = _get(client, url, user)
        assert page.status_code == 200
        assert 'id="approve"' not in page.text, user
    store.decide(change["sys_id"], True, "carol", "")
    assert 'id="approve"' not in _get(client, url, "carol").text
    still = _get(client, url, "bob").text  # one of two authorizations given: bob may still decide
    assert 'id="approve"' in still
    assert f"/change-service/api/release_mgmt/change_request/{change['sys_id']}" in still


def test_changes_list_puts_waiting_ones_first_for_the_authorizer(console) -> None:
    """A change waiting for bob is marked 'awaits you' on his list until he answers; changes of unreadable
    releases are absent."""
    client, store = console
    change = _change(store, u_min_authorizations="2")
    _change(store, u_airflow_dag_id="release_hidden_one", short_description="hidden change")
    page = _get(client, "/changes", "bob").text
    assert "awaits you" in page
    assert "hidden change" not in page
    assert "awaits you" not in _get(client, "/changes", "victor").text  # not an authorizer
    store.decide(change["sys_id"], True, "bob", "")
    assert "awaits you" not in _get(client, "/changes", "bob").text  # answered: still in Authorize, not his turn


def test_hostile_text_is_shown_as_text(console) -> None:
    """A change title with markup is escaped; a secret Airflow's masker knows is replaced by ***."""
    from airflow.sdk.log import mask_secret

    client, store = console
    mask_secret("s3cr3t-pa55word")
    change = _change(store, short_description="<script>alert(1)</script>", description="token s3cr3t-pa55word")
    page = _get(client, f"/changes/{change['sys_id']}", "bob").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "s3cr3t-pa55word" not in page
    assert "token ***" in page


def test_calendar_lists_windows_in_utc_for_the_browser_to_localize(console) -> None:
    """December 2026 shows the year-end freeze of shop/prod with UTC instants; a bad start is a 400 page."""
    client, _ = console
    page = _get(client, "/calendar?view=month&start=2026-12-01")
    assert page.status_code == 200
    assert "freeze year-end" in page.text
    assert 'datetime="2026-12-18T17:00:00+00:00"' in page.text
    assert "shop/prod" in page.text
    assert "hidden_one" not in page.text
    week = _get(client, "/calendar?view=week&start=2026-12-23")
    assert 'data-first="2026-12-21"' in week.text
    bad = _get(client, "/calendar?start=someday")
    assert bad.status_code == 400
    assert "start must be a date" in bad.text


def test_readme_lists_every_console_page(repo: Path) -> None:
    """The README's table of console pages is the code's (PAGES), row for row."""
    readme = (repo / "README.md").read_text()
    for path, what in PAGES:
        assert f"| `{path}` | {what} |" in readme


def test_plugin_shows_the_console_in_the_ui() -> None:
    """The plugin mounts the console and names its pages in the navigation and on the DAG and run pages."""
    from release_mgmt.plugin import ReleaseMgmtPlugin

    prefixes = {app["url_prefix"] for app in ReleaseMgmtPlugin.fastapi_apps}
    assert {"/change-service", "/release-console"} <= prefixes
    views = {v["destination"]: v for v in ReleaseMgmtPlugin.external_views if v["destination"] != "nav"}
    assert views["dag"]["href"] == "/release-console/dags/{DAG_ID}"
    assert views["dag_run"]["href"] == "/release-console/runs/{DAG_ID}/{RUN_ID}"
    nav = [v["url_route"] for v in ReleaseMgmtPlugin.external_views if v["destination"] == "nav"]
    assert nav == ["releases", "release-calendar", "changes"]


def test_evidence_page_shows_who_was_told_what() -> None:
    """The auditor's page lists the run's notifications, a failure with its reason, markup shown as text."""
    from release_mgmt.console.app import TEMPLATES
    from release_mgmt.records.audit import audit_line, records_from_log
    from release_mgmt.reports import evidence

    line = audit_line(
        "notify.failed",
        release="shop",
        run_id="r1",
        outcome="failed",
        environment="prod",
        details={
            "notification": "run.failed",
            "channel": "ops-chat",
            "recipient": "<b>bob</b>",
            "attempts": 3,
            "error": "the webhook answered 500 Internal Server Error",
        },
    )
    report = evidence.build(
        {"dag_id": "release_shop", "run_id": "r1", "state": "failed"}, [], records_from_log(line)[0]
    )
    html = TEMPLATES.get_template("evidence.html").render(root="", viewer=None, report=report, dag_id="d", run_id="r1")
    assert "<h2>Notifications</h2>" in html
    assert "the webhook answered 500 Internal Server Error" in html
    assert "&lt;b&gt;bob&lt;/b&gt;" in html
