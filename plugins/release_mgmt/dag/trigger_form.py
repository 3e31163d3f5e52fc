"""The manual trigger form of a release DAG: a version per component, the environments, dry run, the
emergency change (with break-glass), and the release's own parameters."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from release_mgmt.definition.models import VERSION_PATTERN
from release_mgmt.planning import ReleasePlan, version_param


def trigger_params(plan: ReleasePlan) -> dict[str, Param]:
    """The manual trigger form: a version per component, the environments, dry run, extra fields."""
    envs = list(plan.environment_names)
    params: dict[str, Param] = {}
    for comp in plan.components:
        if comp.source is not None:
            # empty (null): the run's preflight resolves it from the source; a value typed here overrides it
            params[version_param(comp.name)] = Param(
                None,
                type=["null", "string"],
                pattern=VERSION_PATTERN,
                title=f"Version of {comp.name}",
                description=f"Leave empty to deploy what the source gives: {comp.source.describe()}. "
                "A version typed here is deployed instead (the evidence says it was overridden).",
            )
            continue
        params[version_param(comp.name)] = Param(
            comp.version,
            type="string",
            pattern=VERSION_PATTERN,
            title=f"Version of {comp.name}",
            # Markdown (the form shows it only without a plain description): what each environment runs now is
            # one click away, in the release console
            description_md=f"{comp.description or f'The version of {comp.name} to deploy.'} "
            "What runs where now: [Browse → Releases](/plugin/releases).",
        )
    params["environments"] = Param(
        envs,
        type="array",
        items={"type": "string", "enum": envs},
        examples=envs,
        minItems=1,
        title="Environments",
        description=f"Consecutive environments of the promotion order {' -> '.join(envs)}. A run starting "
        "after the first may only deploy versions the environment before it already runs.",
    )
    if plan.break_glass is not None:
        params["emergency_change"] = Param(
            None,
            type=["null", "string"],  # optional: an empty field (null) is a normal run
            pattern=r"^[A-Za-z0-9_.-]{0,40}$",
            title="Emergency change",
            description="Change number of an emergency change: the run then asks the break-glass approvers to "
            "deploy during freezes. Leave empty for a normal run.",
        )
    params["dry_run"] = Param(
        False, type="boolean", title="Dry run", description="Plan and log what would be done; change nothing."
    )
    for key, spec in plan.parameters.items():
        # a text field whose default is empty may be left empty (the form sends null, which renders as ""); one
        # without a default stays required, as the author meant
        optional = spec["type"] == "string" and not spec["enum"] and spec["default"] == ""
        schema: dict[str, Any] = {"type": ["null", "string"] if optional else spec["type"]}
        if spec["enum"]:
            schema["enum"] = list(spec["enum"])
        if spec.get("pattern"):
            schema["pattern"] = spec["pattern"]
        params[key] = Param(spec["default"], description=spec["description"] or None, **schema)
    return params
