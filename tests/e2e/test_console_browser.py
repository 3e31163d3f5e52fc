"""Every role's path in a real browser: Debian's Chromium driven by Playwright against a real multi-process
Airflow with this repository's plugin. Each user signs in through Airflow's own login page; screenshots of every
page are kept in the test's temporary folder (``screenshots/``)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.helpers import minimal_definition, write_definition
from tests.release_runs import gated_sample, release_mgmt_cli, served_version, stop_sample

pytestmark = pytest.mark.e2e
GATE = "prod.gate_approval"


class Person:
    """One user's browser session, signed in through Airflow's login page."""

    def __init__(self, browser: Any, airflow: Any, user: str, shots: Path, zone: str = "Europe/Berlin") -> None:
        self.user, self.airflow, self.shots = user, airflow, shots
        self.context = browser.new_context(timezone_id=zone, viewport={"width": 1400, "height": 1000})
        self.context.set_default_timeout(30_000)
        self.page = self.context.new_page()
        self.page.goto(f"{airflow.url}/auth/login")
        self.page.locator("input[name=username]").fill(user)
        self.page.locator("input[name=password]").fill(airflow.passwords[user])
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(lambda url: "/auth/login" not in url)

    def open(self, path: str) -> Any:
        response = self.page.goto(self.airflow.url + path)
        self.page.wait_for_load_state("networkidle")
        return response

    def console(self, route: str) -> Any:
        """A console page as the UI shows it: inside Airflow's page, in the plugin's frame."""
        self.open(f"/plugin/{route}")
        frame = self.page.frame_locator("iframe")
        frame.locator("header").wait_for()
        return frame

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    return folder


def _wait_parked(airflow: Any, dag: str, run: str) -> None:
    path = f"/api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{GATE}/-1/hitlDetails"

    def parked() -> bool:
        status, detail = airflow.request("GET", path, "admin")
        return (
            status == 200 and not detail.get("response_received") and airflow.states(dag, run)[GATE] == "awaiting_input"
        )

    airflow.wait_for(parked, 180, "the prod approval request")
    time.sleep(4)  # Airflow 3.3 fails a task resumed within a second or so of parking (tests/operators/test_approval)


def test_every_role_does_its_job_in_the_ui(airflow, browser, tmp_path: Path, shots: Path) -> None:
    """admin triggers with the form's defaults; alice approves prod without a comment; victor (a viewer) sees
    the change but no button, and his forged post is refused; bob authorizes in the console; the run succeeds;
    Releases shows the version everywhere; Evidence names alice and bob with the digest the CLI prints."""
    root = tmp_path / "environments"
    data, ports = gated_sample(root)
    data["name"] = "sample_browser"
    write_definition(airflow.releases, "sample_browser.yaml", data)
    dag = "release_sample_browser"
    airflow.wait_for(lambda: airflow.dag_ready(dag), 180, f"{dag} to be parsed")
    try:
        admin = Person(browser, airflow, "admin", shots)
        admin.open(f"/dags/{dag}")
        admin.page.get_by_role("button", name="Trigger").first.click()
        dialog = admin.page.get_by_role("dialog")
        trigger = dialog.get_by_role("button", name="Trigger")
        assert trigger.is_enabled()  # the form's own defaults are enough
        what_runs = dialog.get_by_role("link", name="Browse → Releases")  # before choosing a version
        assert what_runs.get_attribute("href") == "/plugin/releases"
        admin.shot("1-trigger-form")
        trigger.click()
        admin.page.wait_for_url(lambda url: "/runs/" in url)
        run = admin.page.url.split("/runs/", 1)[1].split("/")[0].replace("%2B", "+").replace("%3A", ":")
        assert airflow.run_state(dag, run) in ("queued", "running")
        _wait_parked(airflow, dag, run)

        alice = Person(browser, airflow, "alice", shots)
        alice.open("/required_actions")
        alice.page.get_by_text("Approve sample_browser into prod?").first.click()
        body = alice.page.get_by_text("open the run")
        assert body.get_attribute("href").endswith(f"/dags/{dag}/runs/{run}")  # a link, not plain text
        alice.shot("2-approval-request")
        alice.page.get_by_role("button", name="Approve").click()  # no comment: only a reject needs one
        alice.page.get_by_text("from alice").first.wait_for()
        airflow.wait_state(dag, run, "prod.change_authorized", "deferred", 120)

        bob = Person(browser, airflow, "bob", shots)
        releases = bob.console("releases")
        waiting = releases.locator(".wait-change")
        assert "to be authorized by 1 of alice, bob" in waiting.inner_text()  # says who, and where
        bob.shot("3-releases-waiting-for-the-change")
        query = quote(f"u_airflow_run_id={run}")
        change = airflow.api("GET", f"/change-service/api/now/table/change_request?sysparm_query={query}")
        [record] = change["result"]

        victor = Person(browser, airflow, "victor", shots)
        page = victor.console("changes")
        page.get_by_role("link", name=record["number"]).click()
        page.locator("#approvals").wait_for()
        assert page.locator("#approve").count() == 0  # a viewer sees the change but no button
        victor.shot("4-viewer-sees-no-button")
        forged = victor.page.evaluate(
            """url => fetch(url, {method: "POST", credentials: "same-origin",
                   headers: {"Content-Type": "application/json"}, body: JSON.stringify({comment: "me too"})})
                 .then(r => r.status)""",
            f"/change-service/api/release_mgmt/change_request/{record['sys_id']}/approve",
        )
        assert forged == 403  # refused by the server, whatever the page shows

        page = bob.console("changes")
        assert "awaits you" in page.locator(f"tr[data-number='{record['number']}']").inner_text()
        page.get_by_role("link", name=record["number"]).click()
        page.locator("#comment").fill("CAB ok")
        bob.shot("5-cab-authorizes")
        page.locator("#approve").click()
        page.get_by_text("Recorded: approved.").wait_for()
        assert airflow.wait_finished(dag, run, 240) == "success"
        assert served_version(ports["prod"]) == "1.2.0"

        releases = admin.console("releases")
        for env in ("dev", "staging", "prod"):
            cell = releases.locator(
                f"section[data-release='sample_browser'] td[data-env='{env}'][data-component='web']"
            )
            assert cell.locator(".version").inner_text() == "1.2.0", env
        admin.shot("6-releases-after-the-run")

        admin.open(f"/release-console/runs/{dag}/{run}/evidence")
        text = admin.page.inner_text("body")
        digest = admin.page.locator("#digest").inner_text()
        assert admin.page.locator("section[data-environment='prod'] .gate .approvers").inner_text() == "alice"
        assert admin.page.locator("section[data-environment='prod'] .authorizer").inner_text() == "bob"
        assert "CAB ok" in text
        admin.shot("7-evidence")
        cli = release_mgmt_cli(airflow, "admin", "audit", dag, run, "--format", "json")
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout)["digest"] == digest
        with admin.page.expect_download() as download:
            admin.page.get_by_role("link", name="JSON").click()
        assert json.loads(Path(download.value.path()).read_text())["digest"] == digest
    finally:
        stop_sample(root, ports)
    assert sorted(p.name for p in shots.iterdir())[-1] == "7-evidence.png"


def test_a_frozen_run_and_a_broken_definition_in_the_console(airflow, browser, shots: Path) -> None:
    """A run waiting for a freeze shows the freeze, its end and the next maintenance window in the viewer's time
    zone (UTC on hover); a broken definition shows its file and key path; an unknown run is a 404 page."""
    # the freeze ends at noon UTC, outside the nightly window (03:00-05:00 UTC), whatever time the test runs
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    windows = [
        {"name": "hold", "kind": "freeze", "reason": "board meeting", "timezone": "UTC",
         "start": f"{now - timedelta(hours=1):%Y-%m-%d %H:%M}", "end": f"{now + timedelta(days=2):%Y-%m-%d} 12:00"},
        {"name": "nightly", "kind": "maintenance", "reason": "low traffic", "timezone": "UTC",
         "cron": "0 3 * * *", "duration": "2h"},
    ]  # fmt: skip
    write_definition(airflow.releases, "frozen_browser.yaml", minimal_definition("frozen_browser", windows=windows))
    broken = write_definition(airflow.releases, "broken_browser.yaml", minimal_definition("broken_browser", owner=""))
    dag, run = "release_frozen_browser", ""
    try:
        run = airflow.trigger(dag, "admin")
        airflow.wait_for(lambda: "deferred" in airflow.states(dag, run).values(), 120, "the run to wait for the freeze")
        tokyo = Person(browser, airflow, "olga", shots, zone="Asia/Tokyo")
        page = tokyo.console("releases")
        wait = page.locator("section[data-release='frozen_browser'] .wait-freeze")
        text = wait.inner_text()
        assert "freeze hold (board meeting)" in text
        assert "then waiting for the next maintenance window: maintenance nightly" in text
        until = wait.locator("time")
        assert "GMT+9" in until.inner_text()  # shown in the viewer's zone...
        assert until.get_attribute("title").endswith("UTC")  # ...with UTC on hover
        error = page.locator("[data-broken='release_broken_browser']")
        assert "broken_browser.yaml" in error.inner_text()
        assert "owner" in error.inner_text()
        tokyo.shot("frozen-run-and-broken-definition")
        tokyo.open(f"/dags/{dag}")
        tokyo.page.get_by_role("link", name="Release", exact=True).click()  # the DAG page's tab
        tab = tokyo.page.frame_locator("iframe")
        assert "Release frozen_browser" in tab.locator("h1").inner_text()
        assert "freeze hold" in tab.locator(".wait-freeze").inner_text()
        tokyo.shot("dag-release-tab")
        calendar = tokyo.console("release-calendar")
        assert "freeze hold" in calendar.locator("#agenda").inner_text()
        assert calendar.locator("#grid .ev-freeze").count() >= 1
        tokyo.shot("calendar")
        response = tokyo.open(f"/release-console/runs/{dag}/no_such_run")
        assert response.status == 404
        assert "404" in tokyo.page.inner_text("h1")
        tokyo.shot("unknown-run")
    finally:
        if run:
            airflow.request("PATCH", f"/api/v2/dags/{dag}/dagRuns/{run}", "admin", {"state": "failed"})
        broken.unlink()
