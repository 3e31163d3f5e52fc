"""The http and promote version sources: a JSON field through an HTTP connection, and what another environment
runs now."""

from __future__ import annotations

import pytest

from release_mgmt.errors import SourceError
from release_mgmt.sources import SOURCE_ADAPTER, SourceContext
from tests.servers import Reply, ScriptedHTTP


def ctx(first: str = "staging", previous: str | None = "dev", records: dict[str, str] | None = None) -> SourceContext:
    return SourceContext("payments", "api", first, previous, (records or {}).get)


def test_a_json_field_is_the_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """field: build.artifacts.0.version walks mappings and lists; a number is a version too."""
    with ScriptedHTTP() as server:
        monkeypatch.setenv("AIRFLOW_CONN_BUILDS", server.connection())
        server.script("/latest", default=Reply(200, {"build": {"artifacts": [{"version": "5.2.1"}], "number": 88}}))
        spec = {"type": "http", "connection": "builds", "endpoint": "/latest"}
        assert (
            SOURCE_ADAPTER.validate_python({**spec, "field": "build.artifacts.0.version"}).resolve(ctx()).version
            == "5.2.1"
        )
        assert SOURCE_ADAPTER.validate_python({**spec, "field": "build.number"}).resolve(ctx()).version == "88"
        with pytest.raises(SourceError, match=r"no field 'build\.tag'"):
            SOURCE_ADAPTER.validate_python({**spec, "field": "build.tag"}).resolve(ctx())
        server.script("/latest", default=Reply(200, {"version": "1.0; rm -rf /"}))
        with pytest.raises(SourceError, match="which is not a version"):
            SOURCE_ADAPTER.validate_python({**spec, "field": "version"}).resolve(ctx())
        server.script("/latest", default=Reply(503, "down for maintenance"))
        with pytest.raises(SourceError, match="HTTP 503: down for maintenance"):
            SOURCE_ADAPTER.validate_python({**spec, "field": "version"}).resolve(ctx())


def test_promote_takes_what_the_previous_environment_runs() -> None:
    """Default: the environment before the run's first; ``from`` names another; nothing recorded is an error."""
    promote = SOURCE_ADAPTER.validate_python({"type": "promote"})
    assert promote.resolve(ctx(records={"dev": "2.4.0"})).version == "2.4.0"
    named = SOURCE_ADAPTER.validate_python({"type": "promote", "from": "qa"})
    assert named.resolve(ctx(records={"dev": "2.4.0", "qa": "2.3.9"})).version == "2.3.9"
    with pytest.raises(SourceError, match="no successful deployment in dev"):
        promote.resolve(ctx())
    with pytest.raises(SourceError, match="the first environment"):
        promote.resolve(ctx(first="dev", previous=None))
