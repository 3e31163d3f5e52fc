"""Change backends behind one protocol: the registry picks the backend from the environment's change settings,
each registered backend has the whole protocol, and an unknown name says which exist."""

from __future__ import annotations

import inspect
import json

import pytest

from release_mgmt.change_service.service_token import SERVICE_PRINCIPAL, TaskIdentity
from release_mgmt.hooks.change_backend import CHANGE_BACKENDS, ChangeBackend, backend_for, backend_named
from release_mgmt.hooks.servicenow_backend import BuiltinServiceBackend, ServiceNowBackend

TASK = TaskIdentity("release_shop", "manual__1", "prod.change_open")
PROTOCOL = {n for n, v in vars(ChangeBackend).items() if callable(v) and not n.startswith("_")} - {"selects"}


@pytest.mark.parametrize("backend", CHANGE_BACKENDS, ids=lambda b: b.name)
def test_every_backend_has_the_whole_protocol(backend: type) -> None:
    """Each registered backend implements every method of ChangeBackend, with the same parameters."""
    assert {"ensure", "get", "get_async", "transition", "note", "close", "decisions", "creator"} <= PROTOCOL
    for name in PROTOCOL:
        ours, theirs = inspect.signature(getattr(backend, name)), inspect.signature(getattr(ChangeBackend, name))
        assert list(ours.parameters) == list(theirs.parameters), name
    assert len({b.name for b in CHANGE_BACKENDS}) == len(CHANGE_BACKENDS)


def test_the_default_connection_missing_selects_the_builtin_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """servicenow_default not configured: the built-in service, creating as the service principal."""
    monkeypatch.delenv("AIRFLOW_CONN_SERVICENOW_DEFAULT", raising=False)
    chosen = backend_for({"connection": "servicenow_default"}, TASK)
    assert isinstance(chosen, BuiltinServiceBackend)
    assert chosen.creator() == SERVICE_PRINCIPAL
    assert isinstance(backend_for({}, TASK), BuiltinServiceBackend)


def test_a_configured_connection_selects_servicenow(monkeypatch: pytest.MonkeyPatch) -> None:
    """A named connection, or servicenow_default once configured, is a ServiceNow instance: its login creates."""
    conn = json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": 9, "login": "release-bot"})
    monkeypatch.setenv("AIRFLOW_CONN_SNOW", conn)
    monkeypatch.setenv("AIRFLOW_CONN_SERVICENOW_DEFAULT", conn)
    for settings in ({"connection": "snow"}, {"connection": "servicenow_default"}):
        chosen = backend_for(settings, TASK)
        assert type(chosen) is ServiceNowBackend
        assert chosen.creator() == "release-bot"


def test_backend_named_never_looks_up_and_names_the_known() -> None:
    """A trigger rebuilds the backend its operator chose by name; an unknown name lists the registry."""
    assert isinstance(backend_named("builtin", {}, TASK), BuiltinServiceBackend)
    with pytest.raises(LookupError, match="known: builtin, servicenow"):
        backend_named("jira", {}, TASK)
