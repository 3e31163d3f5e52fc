"""Step types: one module each; ``STEP_TYPES`` is the registry the definition union is built from.

Adding a step type: write its module (a ``StepModel`` subclass with a ``Literal`` ``type``,
``describe`` and ``run``) and add the class to ``STEP_TYPES``.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from release_mgmt.steps.base import StepContext, StepModel, StepOutcome
from release_mgmt.steps.command import CommandStep
from release_mgmt.steps.http import HttpCheckStep, HttpStep
from release_mgmt.steps.kubernetes import KubernetesStep
from release_mgmt.steps.metrics import MetricsCheckStep
from release_mgmt.steps.ssh import SSHStep

STEP_TYPES: tuple[type[StepModel], ...] = (
    CommandStep,
    SSHStep,
    HttpStep,
    HttpCheckStep,
    MetricsCheckStep,
    KubernetesStep,
)


def step_type_names() -> list[str]:
    """The ``type`` tags a step may carry, in registry order."""
    return [cls.model_fields["type"].annotation.__args__[0] for cls in STEP_TYPES]  # type: ignore[union-attr]


if len(STEP_TYPES) > 1:
    Step: Any = Annotated[Union[STEP_TYPES], Field(discriminator="type")]  # noqa: UP007
else:
    Step = STEP_TYPES[0]

STEP_ADAPTER: TypeAdapter[StepModel] = TypeAdapter(Step)

__all__ = ["STEP_ADAPTER", "STEP_TYPES", "Step", "StepContext", "StepModel", "StepOutcome", "step_type_names"]
