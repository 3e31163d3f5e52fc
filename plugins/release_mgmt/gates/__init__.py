"""Gate types: what must hold before an environment's deployment starts. ``GATE_TYPES`` is the registry the
definition union, the error messages, the load-time checks and the DAG builder follow.

Adding a gate type: write its module (a :class:`GateModel` subclass with a ``Literal`` ``type``, its
``OPERATOR`` path and its ``problems``), write the operator (operators/), add the class to ``GATE_TYPES``.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field

from release_mgmt.gates.approval import ApprovalGate
from release_mgmt.gates.base import GateModel

GATE_TYPES: tuple[type[GateModel], ...] = (ApprovalGate,)


def gate_type_names() -> list[str]:
    """The ``type`` tags a gate may carry, in registry order."""
    return [cls.model_fields["type"].annotation.__args__[0] for cls in GATE_TYPES]  # type: ignore[union-attr]


if len(GATE_TYPES) > 1:
    Gate: Any = Annotated[Union[GATE_TYPES], Field(discriminator="type")]  # noqa: UP007
else:
    Gate = GATE_TYPES[0]

__all__ = ["GATE_TYPES", "ApprovalGate", "Gate", "GateModel", "gate_type_names"]
