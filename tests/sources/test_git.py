"""The git version source against real repositories (file:// and a git daemon on loopback): the newest tag in
semantic-version order, pre-releases and build metadata, branch heads, and every way it can fail."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from release_mgmt.errors import SourceError
from release_mgmt.sources import SOURCE_ADAPTER, SourceContext
from release_mgmt.sources.git import GitSource
from tests.helpers import free_port
from tests.servers import Reply, ScriptedHTTP
from tests.sources.conftest import Repo

CTX = SourceContext("payments", "api", "dev", None, lambda env: None)


def git(**spec: object) -> GitSource:
    return SOURCE_ADAPTER.validate_python({"type": "git", **spec})  # type: ignore[return-value]


def tagged(repo: Repo, *names: str) -> dict[str, str]:
    shas = {}
    for name in names:
        shas[name] = repo.commit(f"work for {name}")
        repo.tag(name, annotated=name.endswith("0"))
    return shas


def test_newest_tag_is_chosen_in_semantic_version_order_not_by_name(repo: Repo) -> None:
    """v1.10.0 beats v1.9.0 (which sorts last by name); pre-releases are skipped unless asked for."""
    shas = tagged(repo, "v1.2.0", "v1.10.0", "v1.9.0", "v1.11.0-rc.1", "v2.0.0", "nightly")
    found = git(repository=repo.url, tags="v1.*", tag_prefix="v").resolve(CTX)
    assert (found.version, found.digest) == ("1.10.0", shas["v1.10.0"])
    assert found.reference.endswith("@v1.10.0")
    assert found.source == "git"
    with_pre = git(repository=str(repo.path), tags="v1.*", tag_prefix="v", prereleases=True).resolve(CTX)
    assert with_pre.version == "1.11.0-rc.1"
    assert git(repository=repo.url, tag_prefix="v").resolve(CTX).version == "2.0.0"


def test_build_metadata_does_not_order_and_the_answer_is_stable(repo: Repo) -> None:
    """Two tags of one version differing in build metadata: the same one is chosen whatever the listing order."""
    tagged(repo, "v3.1.0+build.7", "v3.1.0+build.12", "v3.0.9")
    answers = {git(repository=repo.url, tag_prefix="v").resolve(CTX).version for _ in range(3)}
    assert answers == {"3.1.0+build.7"}  # equal versions: the last name in sorted order


def test_an_annotated_tag_resolves_to_its_commit(repo: Repo) -> None:
    """The digest of an annotated tag is the commit it points at, not the tag object."""
    sha = repo.commit("feat: ship")
    repo.tag("v4.0.0", annotated=True)
    assert git(repository=repo.url, tag_prefix="v").resolve(CTX).digest == sha


def test_branch_head_is_the_commit(repo: Repo) -> None:
    """A branch source deploys the head commit (its first 12 characters as the version)."""
    repo.commit("feat: one")
    repo.git("checkout", "-q", "-b", "release/2026.12")
    sha = repo.commit("fix: two")
    found = git(repository=repo.url, branch="release/2026.12").resolve(CTX)
    assert (found.version, found.digest) == (sha[:12], sha)


def test_resolution_over_a_git_daemon(git_daemon: tuple[Path, int]) -> None:
    """The same resolution through git:// on a real daemon."""
    base, port = git_daemon
    served = Repo(base / "identity.git")
    tagged(served, "v0.9.0", "v1.0.0")
    assert git(repository=f"git://127.0.0.1:{port}/identity.git", tag_prefix="v").resolve(CTX).version == "1.0.0"


def test_a_pattern_matching_nothing_names_the_pattern_and_what_exists(repo: Repo) -> None:
    """No tag matches: the error names the pattern and the newest tags there are."""
    tagged(repo, "v1.0.0", "v1.1.0-rc.1")
    with pytest.raises(SourceError, match=r"no tag matches 'v7\.\*' \(newest names: v1\.0\.0, v1\.1\.0-rc\.1\)"):
        git(repository=repo.url, tags="v7.*").resolve(CTX)
    with pytest.raises(SourceError, match=r"every tag matching 'v1\.1\*' is a pre-release"):
        git(repository=repo.url, tags="v1.1*", tag_prefix="v").resolve(CTX)
    with pytest.raises(SourceError, match="is a semantic version after the prefix ''"):
        git(repository=repo.url, tags="v1.*").resolve(CTX)
    empty = Repo(repo.path.parent / "empty")
    empty.commit("chore: nothing tagged")
    with pytest.raises(SourceError, match="it has no tags"):
        git(repository=empty.url).resolve(CTX)


def test_an_unreachable_repository_fails_fast_with_the_reason(tmp_path: Path) -> None:
    """A closed port and a missing path each fail within seconds, naming the repository."""
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"git git://127\.0\.0\.1:\d+/nothing\.git: git failed: .*"):
        git(repository=f"git://127.0.0.1:{free_port()}/nothing.git").resolve(CTX)
    with pytest.raises(SourceError, match="git failed"):
        git(repository=str(tmp_path / "missing")).resolve(CTX)
    assert time.monotonic() - started < 20


@pytest.mark.parametrize(
    "repository",
    ["--upload-pack=touch /tmp/pwned", "ext::sh -c touch% /tmp/pwned", "relative/path", "https://x y", ""],
)
def test_a_repository_that_is_not_a_url_or_absolute_path_is_refused_at_load_time(repository: str) -> None:
    """Option injection and the ext:: transport never reach git: the definition does not load."""
    with pytest.raises(ValidationError, match="repository"):
        git(repository=repository)


def test_the_ext_transport_is_refused_by_git_itself_too(tmp_path: Path) -> None:
    """Even a URL that got past the model could not run a command: git allows only its listed transports."""
    from release_mgmt.sources.runner import git_env, run_git

    marker = tmp_path / "pwned"
    with pytest.raises(SourceError, match="git failed"):
        run_git(["ls-remote", "--", f"ext::sh -c touch% {marker}"], git_env(str(tmp_path)), "test")
    assert not marker.exists()


def test_connection_credentials_go_as_a_header_and_never_into_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection's login and password reach the server as Basic auth; the error names no password."""
    with ScriptedHTTP() as server:
        server.script("/org/api.git/info/refs", default=Reply(403, "forbidden"))
        monkeypatch.setenv(
            "AIRFLOW_CONN_GIT_PAYMENTS",
            f'{{"conn_type": "http", "host": "{server.url}/org/api.git", "login": "ci", "password": "g1t-s3cret"}}',
        )
        with pytest.raises(SourceError) as caught:
            git(connection="git_payments").resolve(CTX)
    sent = {s.headers.get("Authorization") for s in server.seen}
    assert "Basic " + base64.b64encode(b"ci:g1t-s3cret").decode() in sent
    assert "g1t-s3cret" not in str(caught.value)


def test_repository_or_connection_and_tags_or_branch() -> None:
    """Exactly one place to read from; tags and branch exclude each other; a bad ticket pattern is named."""
    with pytest.raises(ValidationError, match="give repository"):
        git()
    with pytest.raises(ValidationError, match="not both"):
        git(repository="/srv/git/api", tags="v*", branch="main")
    with pytest.raises(ValidationError, match="ticket_pattern is not a regular expression"):
        git(repository="/srv/git/api", ticket_pattern="([A-Z]")
