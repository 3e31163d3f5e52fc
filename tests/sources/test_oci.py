"""The oci version source against a local server of the OCI distribution API: paged tag lists, the newest tag in
semantic-version order, a tag's digest from ``Docker-Content-Digest``, Basic and Bearer-token auth through the
connection, and the ways it fails."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from release_mgmt.errors import SourceError
from release_mgmt.sources import SOURCE_ADAPTER, SourceContext
from tests.helpers import free_port
from tests.servers import OciRegistry

CTX = SourceContext("payments", "api", "dev", None, lambda env: None)


def oci(**spec: object) -> Any:
    return SOURCE_ADAPTER.validate_python({"type": "oci", "connection": "registry", **spec})


@pytest.fixture(params=[False, True], ids=["basic", "bearer"])
def registry(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[OciRegistry]:
    with OciRegistry(bearer=request.param) as server:
        monkeypatch.setenv("AIRFLOW_CONN_REGISTRY", server.connection())
        yield server


def test_newest_tag_across_pages_with_its_digest(registry: OciRegistry) -> None:
    """1,500 tags come in two pages; the newest semantic version wins and carries its manifest's digest."""
    for i in range(1500):
        registry.push("team/api", f"1.{i}.0")
    registry.push("team/api", "1.1500.0-rc.1")
    registry.push("team/api", "latest")
    digest = registry.push("team/api", "1.1499.0", "rebuilt")
    found = oci(repository="team/api", tags="1.*").resolve(CTX)
    assert (found.version, found.digest) == ("1.1499.0", digest)
    assert found.reference.endswith("/team/api:1.1499.0")
    assert sum(1 for m, p, _ in registry.seen if p.startswith("/v2/team/api/tags/list")) >= 2


def test_the_digest_a_tag_points_at_is_the_version(registry: OciRegistry) -> None:
    """tag: main deploys what CI pushed last: the version is the digest."""
    registry.push("team/api", "main", "build 1")
    pushed = registry.push("team/api", "main", "build 2")
    found = oci(repository="team/api", tag="main").resolve(CTX)
    assert found.version == found.digest == pushed


def test_wrong_credentials_unknown_image_and_tag_are_named(
    registry: OciRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each failure names the registry and image and says what to check; the password appears nowhere."""
    registry.push("team/api", "1.0.0")
    with pytest.raises(SourceError, match="no tag 'nope'"):
        oci(repository="team/api", tag="nope").resolve(CTX)
    with pytest.raises(SourceError, match="listing tags: HTTP 404"):
        oci(repository="team/other").resolve(CTX)
    with pytest.raises(SourceError, match=r"no tag matches '2\.\*'"):
        oci(repository="team/api", tags="2.*").resolve(CTX)
    monkeypatch.setenv("AIRFLOW_CONN_REGISTRY", registry.connection(password="wrong-pa55"))
    with pytest.raises(SourceError, match=r"token|check the connection's login") as caught:
        oci(repository="team/api").resolve(CTX)
    assert "wrong-pa55" not in str(caught.value)
    assert registry.password not in str(caught.value)


def test_an_unreachable_registry_fails_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listening: the source says the registry is unreachable."""
    monkeypatch.setenv("AIRFLOW_CONN_REGISTRY", f'{{"conn_type": "http", "host": "127.0.0.1", "port": {free_port()}}}')
    with pytest.raises(SourceError, match="registry unreachable"):
        oci(repository="team/api", timeout_seconds=2).resolve(CTX)
