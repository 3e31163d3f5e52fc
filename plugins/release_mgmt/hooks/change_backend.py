"""Change backends: where an environment's change requests live, behind one :class:`ChangeBackend` protocol.

``CHANGE_BACKENDS`` is the registry; :func:`backend_for` picks the first backend whose ``selects`` accepts the
environment's ``change`` settings. The operators and the trigger speak only this protocol and the one state
model (``rules/change.py``); a backend turns it into its system's calls.

Adding a backend: a module with a class that has ``name``, ``selects(settings)`` and the methods below, one
line in ``CHANGE_BACKENDS``, and its tests (tests/hooks/).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from release_mgmt.change_service.service_token import TaskIdentity
from release_mgmt.hooks.servicenow_backend import BuiltinServiceBackend, ServiceNowBackend
from release_mgmt.rules.change import ChangeState


class ChangeBackend(Protocol):
    """One system of change requests, called as one release task."""

    name: ClassVar[str]

    @classmethod
    def selects(cls, settings: Mapping[str, Any]) -> bool:
        """Whether this backend serves an environment with these ``change`` settings."""
        ...

    def creator(self) -> str:
        """Who the changes this backend opens are created by (to tell them from someone else's)."""
        ...

    def ensure(self, correlation_id: str, fields: Mapping[str, Any]) -> tuple[dict[str, str], bool]:
        """The change for ``correlation_id``, created when missing: (record, created). Never two."""
        ...

    def find(self, correlation_id: str) -> dict[str, str] | None:
        """The change opened under ``correlation_id`` (None when there is none)."""
        ...

    def get(self, sys_id: str) -> dict[str, str]:
        """The change's record as stored."""
        ...

    async def get_async(self, sys_id: str) -> dict[str, str]:
        """The same, for triggers: no thread, no blocking sleep."""
        ...

    def transition(self, sys_id: str, state: ChangeState, **fields: Any) -> dict[str, str]:
        """Move the change to ``state`` (writing ``fields`` with it)."""
        ...

    def note(self, sys_id: str, text: str) -> None:
        """Append ``text`` to the change's work notes."""
        ...

    def close(self, sys_id: str, code: str, notes: str) -> dict[str, str]:
        """Close the change with a close code and close notes."""
        ...

    def decisions(self, sys_id: str) -> list[dict[str, str]]:
        """Who answered the change's approval records, how, when and why."""
        ...


#: the registry, in the order :func:`backend_for` asks: the first that selects the settings serves them
CHANGE_BACKENDS: tuple[type[ChangeBackend], ...] = (BuiltinServiceBackend, ServiceNowBackend)


def backend_for(settings: Mapping[str, Any], identity: TaskIdentity | None, **hook_settings: Any) -> ChangeBackend:
    """The backend serving an environment's ``change`` settings, calling as the task ``identity``."""
    for backend in CHANGE_BACKENDS:
        if backend.selects(settings):
            made: ChangeBackend = backend(settings, identity, **hook_settings)  # type: ignore[call-arg]
            return made
    raise LookupError(f"no change backend serves {dict(settings)!r}")


def backend_named(
    name: str, settings: Mapping[str, Any], identity: TaskIdentity | None, **hook_settings: Any
) -> ChangeBackend:
    """The backend ``name`` (as :func:`backend_for` chose it earlier: a trigger never looks a connection up on
    the event loop to choose again)."""
    for backend in CHANGE_BACKENDS:
        if backend.name == name:
            made: ChangeBackend = backend(settings, identity, **hook_settings)  # type: ignore[call-arg]
            return made
    raise LookupError(f"no change backend named {name!r}; known: {', '.join(b.name for b in CHANGE_BACKENDS)}")
