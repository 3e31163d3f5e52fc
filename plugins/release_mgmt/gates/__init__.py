"""Gate types: what must hold before an environment's deployment starts. ``GATE_TYPES`` is the registry."""

from __future__ import annotations

from typing import Any

from release_mgmt.gates.approval import ApprovalGate

GATE_TYPES: tuple[type[Any], ...] = (ApprovalGate,)
Gate: Any = GATE_TYPES[0]  # becomes a discriminated union on `type` when a second gate type arrives

__all__ = ["GATE_TYPES", "ApprovalGate", "Gate"]
