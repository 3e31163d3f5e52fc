"""``oci`` version source: a registry's tags (the newest matching a pattern) or the digest of one tag, through
the OCI distribution API (``GET /v2/<name>/tags/list`` with ``Link`` paging, ``HEAD /v2/<name>/manifests/<tag>``
reading ``Docker-Content-Digest``). The registry is an Airflow HTTP connection: its login and password go as
Basic credentials, or to the token endpoint a ``WWW-Authenticate: Bearer`` challenge names."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, StrictBool, model_validator

from release_mgmt.errors import SourceError, excerpt, quoted
from release_mgmt.sources import tags as tag_rules
from release_mgmt.sources.base import Resolved, SourceContext, SourceModel, checked_version

NAME = r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
TAG = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
MANIFESTS = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
MAX_PAGES = 50
CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class OciSource(SourceModel):
    """The version is the newest tag of an image matching ``tags``, or the digest ``tag`` points at now."""

    type: Literal["oci"]
    connection: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,200}$", description="HTTP connection of the registry.")
    repository: str = Field(pattern=NAME, max_length=255, description="The image's name, e.g. team/payments-api.")
    tags: str | None = Field(default=None, max_length=128, description="Glob on tag names (default: *).")
    tag: str | None = Field(default=None, pattern=TAG, description="Deploy the digest this tag points at now.")
    prereleases: StrictBool = False
    timeout_seconds: float = Field(default=10, gt=0, le=120, description="Time limit of one request.")

    @model_validator(mode="after")
    def _one_way(self) -> OciSource:
        if self.tags is not None and self.tag is not None:
            raise ValueError("give tags (the newest matching tag) or tag (its digest), not both")
        return self

    def describe(self) -> str:
        what = f"digest of tag {self.tag}" if self.tag else f"newest tag {self.tags or '*'}"
        return f"oci {self.repository} (connection {self.connection}): {what}"

    def resolve(self, ctx: SourceContext) -> Resolved:
        client = _Registry(self.connection, self.repository, self.timeout_seconds)
        if self.tag:
            digest = client.digest(self.tag)
            return Resolved(ctx.component, "oci", f"{client.where}:{self.tag}", digest, digest)
        names = client.tags()
        pattern = self.tags or "*"
        tag = tag_rules.newest(names, pattern, "", self.prereleases)
        if tag is None:
            why = tag_rules.why_none(names, pattern, "", self.prereleases)
            raise SourceError(f"oci {client.where}: no version to deploy: {why}")
        version = checked_version(tag, f"oci {client.where}")
        return Resolved(ctx.component, "oci", f"{client.where}:{tag}", version, client.digest(tag))


class _Registry:
    """The two calls of the distribution API a source needs, with the connection's credentials."""

    def __init__(self, connection: str, name: str, timeout: float) -> None:
        import requests
        from airflow.providers.http.hooks.http import HttpHook

        hook = HttpHook(method="GET", http_conn_id=connection)
        conn = hook.get_connection(connection)
        hook.get_conn()  # sets base_url from the connection (host with or without a scheme, port)
        self.base = hook.base_url.rstrip("/")
        self.login, self.password = conn.login or "", conn.password or ""
        self.name, self.timeout = name, timeout
        self.where = f"{re.sub(r'^https?://', '', self.base)}/{name}"
        self.session = requests.Session()
        self.token = ""

    def _get(self, method: str, url: str, headers: dict[str, str] | None = None) -> Any:
        import requests

        headers = dict(headers or {})
        for _ in range(2):
            auth = None if self.token else ((self.login, self.password) if self.login else None)
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            try:
                answer = self.session.request(method, url, headers=headers, auth=auth, timeout=self.timeout)
            except requests.RequestException as exc:
                raise SourceError(f"oci {self.where}: registry unreachable ({type(exc).__name__})") from None
            challenge = answer.headers.get("WWW-Authenticate", "")
            if answer.status_code == 401 and challenge.lower().startswith("bearer") and not self.token:
                self.token = self._token(dict(CHALLENGE.findall(challenge)))
                continue
            return answer
        return answer

    def _token(self, challenge: dict[str, str]) -> str:
        import requests

        realm = challenge.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            raise SourceError(f"oci {self.where}: the registry's token challenge names no realm")
        params = {k: challenge[k] for k in ("service", "scope") if k in challenge}
        params.setdefault("scope", f"repository:{self.name}:pull")
        auth = (self.login, self.password) if self.login else None
        try:
            answer = self.session.get(realm, params=params, auth=auth, timeout=self.timeout)
            token = answer.json().get("token") or answer.json().get("access_token") if answer.ok else None
        except (requests.RequestException, ValueError):
            token = None
        if not isinstance(token, str) or not token:
            raise SourceError(f"oci {self.where}: no token from the registry's token endpoint (check the login)")
        return token

    def _fail(self, answer: Any, what: str) -> SourceError:
        hint = " (check the connection's login)" if answer.status_code in (401, 403) else ""
        return SourceError(f"oci {self.where}: {what}: HTTP {answer.status_code}{hint}: {excerpt(answer.text, 200)}")

    def tags(self) -> list[str]:
        url, found = f"{self.base}/v2/{self.name}/tags/list?n=1000", []
        for _ in range(MAX_PAGES):
            answer = self._get("GET", url)
            if answer.status_code != 200:
                raise self._fail(answer, "listing tags")
            try:
                found += [t for t in (answer.json().get("tags") or []) if isinstance(t, str)]
            except ValueError:
                raise SourceError(f"oci {self.where}: the tags list is not JSON") from None
            link = re.match(r'\s*<([^>]+)>\s*;\s*rel="?next"?', answer.headers.get("Link", ""))
            if not link:
                return found
            url = link[1] if link[1].startswith("http") else f"{self.base}{link[1]}"
        raise SourceError(f"oci {self.where}: more than {MAX_PAGES} pages of tags")

    def digest(self, tag: str) -> str:
        answer = self._get("HEAD", f"{self.base}/v2/{self.name}/manifests/{tag}", {"Accept": MANIFESTS})
        if answer.status_code == 404:
            raise SourceError(f"oci {self.where}: no tag {quoted(tag)}")
        if answer.status_code != 200:
            raise self._fail(answer, f"reading tag {tag}")
        digest = answer.headers.get("Docker-Content-Digest", "")
        if not DIGEST.fullmatch(digest):
            raise SourceError(f"oci {self.where}: tag {tag} has no sha256 Docker-Content-Digest")
        return str(digest)
