"""What every gate type is: a strict model with a ``type`` tag and a ``name`` (its task is ``gate_<name>``),
the operator that runs it, and the checks it needs at load time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, StringConstraints

GroupName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,49}$")]


class GateModel(BaseModel):
    """Base of every gate type: subclasses add a ``Literal`` ``type``, their settings, ``OPERATOR`` and
    ``problems``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: GroupName
    #: the operator class that runs this gate, as a dotted path (the DAG builder imports it; the definition
    #: layer never imports Airflow). It takes ``release``, ``environment``, ``gate`` (this model as JSON),
    #: ``approver_groups``, ``earlier_gates``, ``components`` and ``environments``.
    OPERATOR: ClassVar[str]

    def problems(self, approver_groups: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
        """(key, message) of what makes this gate impossible to pass, checked when the definition loads."""
        return []
