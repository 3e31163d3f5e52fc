"""``git`` version source: the newest tag matching a pattern (semantic-version order), or a branch's head, read
with ``git ls-remote`` from a URL or local path (credentials from an Airflow connection); release notes from the
commits between two versions, read from a bare clone made for the run and removed afterwards."""

from __future__ import annotations

import re
import tempfile
from typing import Any, Literal

from pydantic import Field, StrictBool, field_validator, model_validator

from release_mgmt.errors import SourceError, quoted
from release_mgmt.sources import notes as release_notes
from release_mgmt.sources import tags as tag_rules
from release_mgmt.sources.base import Resolved, SourceContext, SourceModel, checked_version
from release_mgmt.sources.runner import git_env, run_git

#: what a repository may be: a URL of an allowed transport, or an absolute local path
REPOSITORY = r"^((https?|git|ssh|file)://[^\s]+|/[^\s]*)$"
REF = r"^[A-Za-z0-9][A-Za-z0-9._/+*?\[\]-]{0,199}$"
FIELD = "\x1f"
RECORD = "\x1e"


class GitSource(SourceModel):
    """The version is a tag of a git repository (the newest matching ``tags``), or the head of ``branch``."""

    type: Literal["git"]
    repository: str | None = Field(
        default=None,
        pattern=REPOSITORY,
        description="URL (https, http, git, ssh, file) or absolute path of the repository.",
    )
    connection: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,200}$",
        description="Airflow connection: its host is the repository URL (when repository is not given), its "
        "login and password are sent as HTTP Basic credentials.",
    )
    tags: str | None = Field(default=None, pattern=REF, description="Glob on tag names, e.g. v1.* (default: *).")
    branch: str | None = Field(default=None, pattern=REF, description="Deploy this branch's head (its commit).")
    tag_prefix: str = Field(default="", max_length=40, description="The version is the tag without it, e.g. v.")
    prereleases: StrictBool = Field(default=False, description="Take pre-release tags (1.2.0-rc.1) too.")
    ticket_pattern: str = Field(
        default=release_notes.DEFAULT_TICKETS, max_length=200, description="Regular expression of ticket keys."
    )
    timeout_seconds: float = Field(default=60, gt=0, le=600, description="Time limit of one git command.")

    has_notes = True

    @field_validator("ticket_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"ticket_pattern is not a regular expression ({exc.msg})") from None
        return value

    @model_validator(mode="after")
    def _one_way(self) -> GitSource:
        if self.repository is None and self.connection is None:
            raise ValueError("give repository (a URL or path), or connection (whose host is the URL)")
        if self.tags is not None and self.branch is not None:
            raise ValueError("give tags (the newest matching tag) or branch (its head), not both")
        return self

    def describe(self) -> str:
        where = self.repository or f"connection {self.connection}"
        what = f"branch {self.branch} head" if self.branch else f"newest tag {self.pattern}"
        return f"git {where}: {what}"

    @property
    def pattern(self) -> str:
        return self.tags or "*"

    def _where(self) -> tuple[str, dict[str, str], str]:
        """The URL, git's environment and a name for messages (the URL without credentials)."""
        login = password = ""
        url = self.repository or ""
        if self.connection:
            from airflow.sdk import BaseHook

            conn = BaseHook.get_connection(self.connection)
            login, password = conn.login or "", conn.password or ""
            url = url or str(conn.host or "")
            if password:
                from airflow.sdk.log import mask_secret

                mask_secret(password)
        if not re.fullmatch(REPOSITORY, url):
            raise SourceError(f"git source: connection {self.connection} has no repository URL as its host")
        shown = re.sub(r"//[^/@]*@", "//", url)
        return url, git_env(tempfile.gettempdir(), login, password), shown

    def resolve(self, ctx: SourceContext) -> Resolved:
        url, env, shown = self._where()
        what = f"git {shown}"
        if self.branch:
            out = run_git(
                ["ls-remote", "--heads", "--", url, f"refs/heads/{self.branch}"], env, what, self.timeout_seconds
            )
            sha = out.split("\t", 1)[0].strip()
            if not sha:
                raise SourceError(f"{what}: no branch {quoted(self.branch)}")
            return Resolved(ctx.component, "git", f"{shown}#{self.branch}", sha[:12], sha)
        out = run_git(["ls-remote", "--tags", "--", url], env, what, self.timeout_seconds)
        commits: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            name = ref.removeprefix("refs/tags/")
            if name.endswith("^{}"):
                commits[name[:-3]] = sha  # an annotated tag's commit
            else:
                commits.setdefault(name, sha)
        tag = tag_rules.newest(commits, self.pattern, self.tag_prefix, self.prereleases)
        if tag is None:
            why = tag_rules.why_none(commits, self.pattern, self.tag_prefix, self.prereleases)
            raise SourceError(f"{what}: no version to deploy: {why}")
        version = checked_version(tag[len(self.tag_prefix) :], f"{what} tag {tag}")
        return Resolved(ctx.component, "git", f"{shown}@{tag}", version, commits[tag])

    def ref_of(self, version: str) -> str:
        """The git revision a version of this source names."""
        return version if self.branch else f"refs/tags/{self.tag_prefix}{version}"

    def notes(self, component: str, ranges: dict[str, tuple[str | None, str]]) -> dict[str, dict[str, Any]]:
        """Release notes per key of ``ranges`` (key -> (previous version or None, new version)), from one bare
        clone; a range git cannot read gets notes with a ``note`` saying why, never an error."""
        url, env, shown = self._where()
        found: dict[str, dict[str, Any]] = {}
        with tempfile.TemporaryDirectory(prefix="release-notes-") as home:
            env = env | {"HOME": home}
            run_git(
                ["clone", "--bare", "--quiet", "--", url, f"{home}/repo"], env, f"git {shown}", self.timeout_seconds
            )
            for key, (previous, version) in sorted(ranges.items(), key=lambda kv: kv[0]):
                found[key] = self._range(component, f"{home}/repo", env, previous, version)
        return found

    def _range(
        self, component: str, repo: str, env: dict[str, str], previous: str | None, version: str
    ) -> dict[str, Any]:
        target = self.ref_of(version)
        span = [target] if previous is None or previous == version else [f"{self.ref_of(previous)}..{target}"]
        if previous == version:
            return release_notes.notes(component, previous, version, [], note="the same version runs there already")
        fmt = f"--format=%H{FIELD}%an{FIELD}%s{FIELD}%b{RECORD}"
        try:
            out = run_git(["log", "--no-merges", fmt, *span, "--"], env, "git log", self.timeout_seconds, cwd=repo)
        except SourceError as exc:
            return release_notes.notes(component, previous, version, [], note=f"no notes: {exc}")
        tickets = re.compile(self.ticket_pattern)
        records = [r.strip("\n") for r in out.split(RECORD) if r.strip()]
        commits = []
        for record in records:
            sha, author, subject, body = [*record.split(FIELD), "", "", ""][:4]
            commits.append(release_notes.parse_commit(sha, author, subject, body, tickets))
        listed = commits[: release_notes.MAX_COMMITS]
        return release_notes.notes(component, previous, version, listed, more=len(commits) - len(listed))
