"""Release notes from a real repository: exactly the commits between two versions, grouped by Conventional
Commits type, breaking changes and ticket keys found, merge commits left out, and ranges git cannot read."""

from __future__ import annotations

import re

from release_mgmt.sources import SOURCE_ADAPTER
from release_mgmt.sources.notes import parse_commit, to_markdown
from tests.sources.conftest import Repo


def test_notes_list_exactly_the_commits_in_range(repo: Repo) -> None:
    """1.0.0..1.1.0 holds the four commits made after 1.0.0 (the merge itself left out), grouped by type."""
    repo.commit("feat: first release")
    repo.tag("v1.0.0")
    in_range = {
        repo.commit("feat(api): refunds over the API (PAY-12)"),
        repo.commit("fix: rounding of totals\n\nFixes PAY-13 and OPS-7."),
        repo.commit("Tidy the README"),
    }
    repo.git("checkout", "-q", "-b", "topic")
    in_range.add(repo.commit("feat!: drop the v1 endpoint\n\nBREAKING CHANGE: clients must call /v2"))
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "Merge branch 'topic'", "topic")
    repo.tag("v1.1.0")
    repo.commit("feat: after the release, not in it")
    source = SOURCE_ADAPTER.validate_python({"type": "git", "repository": repo.url, "tag_prefix": "v"})
    notes = source.notes(  # type: ignore[attr-defined]
        "api", {"prod": ("1.0.0", "1.1.0"), "dev": (None, "1.1.0"), "qa": ("1.1.0", "1.1.0"), "x": ("0.1.0", "1.1.0")}
    )
    prod = notes["prod"]
    listed = {c["sha"] for group in prod["groups"].values() for c in group}
    assert listed == in_range
    assert prod["commits"] == 4
    assert {k: [c["subject"] for c in v] for k, v in prod["groups"].items()} == {
        "Features": ["drop the v1 endpoint", "refunds over the API (PAY-12)"],
        "Fixes": ["rounding of totals"],
        "Other changes": ["Tidy the README"],
    }
    assert [c["subject"] for c in prod["breaking"]] == ["drop the v1 endpoint"]
    assert prod["tickets"] == ["OPS-7", "PAY-12", "PAY-13"]
    assert (prod["from"], prod["to"]) == ("1.0.0", "1.1.0")
    assert notes["dev"]["commits"] == 5
    assert notes["dev"]["from"] == ""
    assert notes["qa"]["commits"] == 0
    assert "already" in notes["qa"]["note"]
    assert notes["x"]["commits"] == 0
    assert notes["x"]["note"].startswith("no notes: git log: git failed")
    text = to_markdown(prod)
    assert text.startswith("### api 1.1.0 (since 1.0.0): 4 commit(s)")
    assert "**Breaking changes**" in text
    assert "- **api**: refunds over the API (PAY-12) [" in text  # a ticket the subject shows is not repeated
    assert "- rounding of totals (OPS-7, PAY-13) [" in text  # tickets from the body are added
    assert "- drop the v1 endpoint: clients must call /v2 [" in text  # the breaking note
    assert text.endswith("Tickets: OPS-7, PAY-12, PAY-13")


def test_ticket_pattern_is_the_definitions() -> None:
    """A custom pattern finds that tracker's keys and nothing else."""
    commit = parse_commit("abc", "ada", "fix: #482 and PAY-1", "", re.compile(r"#\d+"))
    assert commit["tickets"] == ["#482"]
    assert commit["type"] == "fix"


def test_a_free_form_message_is_an_other_change() -> None:
    """A subject that only looks conventional (unknown type, no space) is kept whole."""
    for subject in ("wip: stuff", "feat:no space", "Update deps"):
        commit = parse_commit("abc", "ada", subject, "", re.compile("X-1"))
        assert (commit["type"], commit["subject"], commit["scope"]) == ("", subject, "")
