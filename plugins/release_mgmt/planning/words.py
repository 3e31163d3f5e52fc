"""The plan in words, for people: the preflight log, the DAG's docs and the change request's plans.

Steps are described with the values known when the plan is made (environment, component, release and the
environment's ``vars``), so a reviewer reads ``--port 18083`` instead of ``--port {{ vars.port }}``. A run fills
in its versions (:func:`with_version`). Anything else (parameters, filters) stays as the author wrote it. Hosts
are named by their connection id; a secret is never in a definition, so never in these texts. No Airflow here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from release_mgmt.definition.durations import format_duration
from release_mgmt.planning.graph import EnvironmentPlan, ReleasePlan, TaskSpec

_KNOWN = re.compile(r"\{\{\s*(environment|component|release|vars\.([A-Za-z_][A-Za-z0-9_]*))\s*\}\}")
_VERSION = re.compile(r"\{\{\s*(version|previous_version)\s*\}\}")
PREVIOUS = "<the last known good version>"


def with_known_values(
    text: str, *, release: str, environment: str, component: str, variables: Mapping[str, Any]
) -> str:
    """``text`` with ``{{ environment }}``, ``{{ component }}``, ``{{ release }}`` and ``{{ vars.X }}`` filled in."""

    def value(match: re.Match[str]) -> str:
        name, var = match.group(1), match.group(2)
        if var is not None:
            return str(variables[var]) if var in variables else match.group(0)
        return {"environment": environment, "component": component, "release": release}[name]

    return _KNOWN.sub(value, text)


def with_version(text: str, version: str) -> str:
    """``text`` with ``{{ version }}`` filled in and ``{{ previous_version }}`` named (it is known only when the
    deploy starts)."""
    return _VERSION.sub(lambda m: version if m.group(1) == "version" else PREVIOUS, text)


def with_versions(plan: str, versions: Mapping[str, str]) -> str:
    """A change plan (``- component: ...`` lines) with each line's component version filled in."""
    lines = []
    for line in plan.splitlines():
        component = line[2:].split(":", 1)[0] if line.startswith("- ") else ""
        lines.append(with_version(line, versions[component]) if component in versions else line)
    return "\n".join(lines)


def describe(plan: ReleasePlan, env: EnvironmentPlan, task: TaskSpec) -> str:
    """A step task's steps in one line, with the values known at plan time."""
    text = "; ".join(s.describe() for s in task.steps)
    component = task.component or ""
    return with_known_values(
        text, release=plan.release, environment=env.name, component=component, variables=env.variables
    )


def plan_lines(plan: ReleasePlan) -> list[str]:
    """The plan in words, one line per step task, for the preflight log and the DAG docs."""
    return [
        f"{task.task_id}: {describe(plan, env, task)}"
        for env in plan.environments
        for task in env.tasks
        if task.kind in ("deploy", "validate", "rollback")
    ]


def steps_of(plan: ReleasePlan, env: EnvironmentPlan, kind: str) -> str:
    """``- component: steps`` lines of one environment's tasks of ``kind`` (a change request's plan)."""
    lines = [f"- {t.component}: {describe(plan, env, t)}" for t in env.tasks if t.kind == kind and t.steps]
    return "\n".join(lines) or "- none"


def controls(plan: ReleasePlan, env: EnvironmentPlan) -> list[str]:
    """The controls on the way into ``env``, one sentence each: gates, change, windows, lock."""
    found = []
    for task in env.tasks:
        if task.kind == "gate":
            gate = task.arguments.get("gate", {})
            people = sorted(
                {*gate.get("users", ()), *(u for g in gate.get("groups", ()) for u in plan.approver_groups.get(g, ()))}
            )
            found.append(
                f"approval gate `{gate.get('name')}`: {gate.get('min_approvals', 1)} of {', '.join(people) or 'nobody'}"
                f", within {gate.get('timeout')} (then {gate.get('on_timeout', 'reject')})"
            )
    if env.change:
        found.append(
            f"{env.change.get('type', 'normal')} change request, authorized by "
            f"{env.change.get('min_authorizations', 1)} of {', '.join(env.authorizers) or 'nobody'}"
        )
    names = sorted({f"{w.kind} {w.name}" for w in plan.windows if w.applies_to(env.name, plan.release)})
    if names:
        found.append(f"windows: {', '.join(names)} (freezes: {env.on_freeze}; outside maintenance: "
                     f"{env.outside_maintenance})")  # fmt: skip
    if env.lock:
        found.append(f"lock `{env.lock}` (runs take turns; waits up to {format_duration(env.lock_timeout)})")
    return found


def doc_md(plan: ReleasePlan) -> str:
    """The DAG's documentation: what the release is, who owns it, its promotion order, the controls on the way
    into each environment, break-glass, and its steps."""
    rows = "\n".join(f"- `{line.split(': ', 1)[0]}`: {line.split(': ', 1)[1]}" for line in plan_lines(plan))
    comps = ", ".join(
        f"{c.name} {c.version or (f'({c.source.describe()})' if c.source else '')}" for c in plan.components
    )
    control_rows = "\n".join(
        f"- **{env.name}**: " + ("; ".join(controls(plan, env)) or "no gate, change, window or lock")
        for env in plan.environments
    )
    glass = (
        "An emergency run (trigger parameter `emergency_change`) may deploy during a freeze once its break-glass "
        "approval is given."
        if plan.break_glass
        else "No break-glass: freezes always hold."
    )
    return (
        f"### Release {plan.release}\n\n{plan.description}\n\n"
        f"- definition: `{plan.source}`\n- owner: {plan.owner} {plan.team}\n"
        f"- promotion order: {' → '.join(plan.environment_names)}\n- default versions: {comps}\n\n"
        f"#### Controls\n{control_rows}\n\n{glass}\n\n"
        f"#### Steps\n{rows}\n"
    )
