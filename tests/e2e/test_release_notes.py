"""Versions from a git repository and their release notes on a real Airflow: the run resolves the newest tag, the
prod change's description carries the notes, and an auditor (a viewer) reads the versions and each environment's
notes on the run's evidence page in Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.e2e.test_console_browser import Person
from tests.helpers import command, write_definition
from tests.sources.conftest import Repo

pytestmark = pytest.mark.e2e


def test_notes_reach_the_change_and_the_evidence_page(airflow, tmp_path: Path, browser) -> None:
    """1.0.0 runs in dev; 1.1.0 is tagged after three commits; the next run deploys 1.1.0 with notes since 1.0.0
    in dev and from the first commit in prod (never deployed there)."""
    repo = Repo(tmp_path / "notes-api")
    repo.commit("feat: first")
    repo.tag("v1.0.0")
    definition = {
        "name": "notes_api",
        "owner": "payments-team",
        "components": [
            {
                "name": "api",
                "source": {"type": "git", "repository": repo.url, "tag_prefix": "v"},
                "deploy": command("echo deploy {{ version }}"),
                "rollback": command("echo back to {{ previous_version }}"),
            }
        ],
        "environments": [
            {"name": "dev"},
            {"name": "prod", "change": {"authorizers": {"users": ["bob", "carol"]}, "poll": "5s"}},
        ],
    }
    write_definition(airflow.releases, "notes_api.yaml", definition)
    first = airflow.trigger("release_notes_api", "alice", {"environments": ["dev"]})
    assert airflow.wait_finished("release_notes_api", first) == "success"
    repo.commit("feat(api): refunds <b>bold</b> (PAY-7)")
    repo.commit("fix: rounding\n\nBREAKING CHANGE: totals are now integers")
    repo.commit("Tidy up")
    repo.tag("v1.1.0")
    run = airflow.trigger("release_notes_api", "alice")
    change: dict[str, Any] = airflow.wait_for(lambda: _awaiting(airflow, run), 300, "the prod change")
    assert "Versions:\n- api: 1.1.0\n" in change["description"]  # the version the source gave
    assert "Release notes:\n### api 1.1.0 (first deployment): 4 commit(s)" in change["description"]
    assert "- **api**: refunds <b>bold</b> (PAY-7) [" in change["description"]
    airflow.api("POST", f"/change-service/api/release_mgmt/change_request/{change['sys_id']}/approve", "bob", {})
    assert airflow.wait_finished("release_notes_api", run, 300) == "success"
    auditor = Person(browser, airflow, "victor", tmp_path)
    try:
        auditor.open(f"/release-console/runs/release_notes_api/{quote(run, safe='')}/evidence")
        version = auditor.page.locator("tr.version").inner_text()
        assert "resolved" in version
        assert "@v1.1.0" in version
        dev = auditor.page.locator("section[data-environment=dev] .notes")
        assert "api 1.1.0 (since 1.0.0): 3 commit(s)" in dev.locator("h3").inner_text()
        commits = dev.locator("li.commit").all_inner_texts()
        assert any(text.startswith("api: refunds <b>bold</b> (PAY-7)") for text in commits)  # shown, not rendered
        assert dev.locator("li.breaking").inner_text().startswith("rounding: totals are now integers")
        assert dev.locator(".tickets").inner_text() == "Tickets: PAY-7"
        prod = auditor.page.locator("section[data-environment=prod] .notes h3").inner_text()
        assert "first deployment" in prod
        auditor.shot("evidence-with-release-notes")
    finally:
        auditor.context.close()


def _awaiting(airflow, run: str) -> dict[str, Any] | None:
    query = quote("correlation_idSTARTSWITHrelease_mgmt:notes_api:^state=-3", safe="")
    found = airflow.api("GET", f"/change-service/api/now/table/change_request?sysparm_query={query}")["result"]
    return next((c for c in found if run in c["correlation_id"]), None)
