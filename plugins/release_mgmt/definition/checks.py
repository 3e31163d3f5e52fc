"""Checks that span keys of a definition, after its schema passed: unique names, known and acyclic
dependencies, required rollbacks, reachable quorums (each gate type's own checks), authorizers, windows that
name this release's environments, and shell strings that never embed a trigger parameter unquoted."""

from __future__ import annotations

import graphlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from release_mgmt.definition.calendars import Window, to_utc
from release_mgmt.definition.durations import format_duration
from release_mgmt.definition.models import ReleaseDefinition
from release_mgmt.definition.templates import template_problems
from release_mgmt.errors import Problem
from release_mgmt.gates.approval import reachable_problems as gate_reachability
from release_mgmt.steps import shell

RESERVED_PARAMETERS = ("environments", "dry_run", "emergency_change")
#: how far ahead a maintenance window must still open with time to deploy
MAINTENANCE_HORIZON = timedelta(days=400)
#: task ids outside every environment's group (planning/graph.py): an environment group may not take them
RESERVED_ENVIRONMENTS = ("preflight", "break_glass", "summary")


def semantic_problems(defn: ReleaseDefinition) -> list[Problem]:
    """Checks that span keys: unique names, known and acyclic dependencies, required rollbacks."""
    problems = _duplicates("components", [c.name for c in defn.components], "component")
    problems += _duplicates("environments", [e.name for e in defn.environments], "environment")
    names = [c.name for c in defn.components]
    for i, comp in enumerate(defn.components):
        for j, dep in enumerate(comp.depends_on):
            where = f"components[{i}].depends_on[{j}]"
            if dep == comp.name:
                problems.append(Problem(where, f"component {comp.name!r} cannot depend on itself"))
            elif dep not in names:
                problems.append(Problem(where, f"unknown component {dep!r}; known components: {', '.join(names)}"))
        if defn.policy.require_rollback and comp.rollback is None:
            problems.append(
                Problem(
                    f"components[{i}].rollback",
                    "required key is missing: "
                    "policy.require_rollback is true; add a rollback step, or set "
                    "policy.require_rollback: false",
                )
            )
    problems += _source_problems(defn)
    problems += _gate_problems(defn)
    problems += _authorizer_problems(defn)
    problems += shell_problems(defn)[0]
    problems += _window_problems(defn)
    problems += _break_glass_problems(defn)
    problems += _distinct_problems(defn)
    problems += template_problems(defn)
    problems += [
        Problem(
            f"environments[{i}].name",
            f"{env.name!r} is the name of a task every release DAG has; choose another environment name",
        )
        for i, env in enumerate(defn.environments)
        if env.name in RESERVED_ENVIRONMENTS
    ]
    if not problems:
        problems += _cycle_problems(defn)
    if defn.schedule is not None:  # Airflow refuses a schedule while a parameter has nothing to start with
        problems += [
            Problem(
                f"parameters.{key}",
                "needs a default: scheduled runs (schedule) start with nobody to fill in the trigger form",
            )
            for key, param in defn.parameters.items()
            if param.default is None
        ]
    reserved = {*RESERVED_PARAMETERS, *(f"version_{n}" for n in names)}
    for key in sorted(defn.parameters.keys() & reserved):
        problems.append(Problem(f"parameters.{key}", f"{key!r} is a built-in trigger parameter; choose another name"))
    return problems


def _source_problems(defn: ReleaseDefinition) -> list[Problem]:
    """A promote source names an environment of the release, other than the last (nothing runs after it)."""
    envs = [e.name for e in defn.environments]
    problems = []
    for i, comp in enumerate(defn.components):
        source = getattr(comp.source, "from_environment", None)
        if source is not None and source not in envs[:-1]:
            problems.append(
                Problem(
                    f"components[{i}].source.from",
                    f"unknown environment {source!r}; promote from one of {', '.join(envs[:-1]) or '(none)'}"
                    if source not in envs
                    else f"{source!r} is the last environment; promote from one before it",
                )
            )
    return problems


def _break_glass_problems(defn: ReleaseDefinition) -> list[Problem]:
    """The break-glass approval can be reached, and never opens a freeze by timing out; emergency changes
    need it."""
    gate = defn.break_glass
    emergency = [
        Problem(
            f"environments[{i}].change.type",
            "an emergency change needs the break-glass path: define "
            "break_glass (who approves emergency runs), or use a normal change",
        )
        for i, env in enumerate(defn.environments)
        if env.change is not None and env.change.type == "emergency" and gate is None
    ]
    if gate is None:
        return emergency
    problems = [
        Problem(f"break_glass.{key}", message) for key, message in gate_reachability(gate, defn.approver_groups)
    ]
    if gate.on_timeout != "reject":
        problems.append(Problem("break_glass.on_timeout", "must be reject: only people may open a freeze"))
    return problems


def _component_steps(defn: ReleaseDefinition) -> Iterator[tuple[str, Any]]:
    """(key path, step) of every step of every component."""
    for i, comp in enumerate(defn.components):
        for key in ("current_version", "deploy", "rollback", "undeploy"):
            step = getattr(comp, key)
            if step is not None:
                yield f"components[{i}].{key}", step
        for j, step in enumerate(comp.validation):
            yield f"components[{i}].validate[{j}]", step


def shell_problems(defn: ReleaseDefinition) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) about trigger parameters embedded in shell strings (steps/shell.py)."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    for where, step in _component_steps(defn):
        bad, noted = shell.problems(step.model_dump())
        errors += [Problem(f"{where}.{key}", message) for key, message in bad]
        warnings += [Problem(f"{where}.{key}", message) for key, message in noted]
    return errors, warnings


def _authorizer_problems(defn: ReleaseDefinition) -> list[Problem]:
    """Changes that need authorization name authorizers who exist and can reach the quorum without the one
    who triggers the run (who never authorizes its own change)."""
    problems: list[Problem] = []
    known = defn.approver_groups
    listed = ", ".join(sorted(known)) or "none (define approver_groups)"
    for i, env in enumerate(defn.environments):
        change = env.change
        if change is None:
            continue
        where = f"environments[{i}].change"
        unknown = [(k, g) for k, g in enumerate(change.authorizers.groups) if g not in known]
        problems += [
            Problem(
                f"{where}.authorizers.groups[{k}]",
                f"unknown approver group {g!r}; known groups: {listed}",
            )
            for k, g in unknown
        ]
        if unknown or change.type == "standard":
            continue
        names = change.authorizers.names(known, change.assignment_group)
        if not names:
            problems.append(
                Problem(
                    f"{where}.authorizers",
                    f"a {change.type} change needs authorizers: name users or approver groups who may authorize it "
                    "(e.g. authorizers: {groups: [release-managers]}), or use type: standard",
                )
            )
        elif change.min_authorizations > len(names) - 1:
            problems.append(
                Problem(
                    f"{where}.min_authorizations",
                    f"{change.min_authorizations} cannot be reached: {len(names)} authorizer(s) "
                    f"({', '.join(names)}), and whoever triggers the run cannot authorize its change, so at most "
                    f"{len(names) - 1} can; add authorizers or lower min_authorizations",
                )
            )
    return problems


def _window_problems(defn: ReleaseDefinition) -> list[Problem]:
    """The definition's own windows name its environments and components, and apply to it (shared calendars
    may name other releases'): a typo in a scope would leave a freeze protecting nothing."""
    problems: list[Problem] = []
    known = {"environments": [e.name for e in defn.environments], "components": [c.name for c in defn.components]}
    for i, window in enumerate(defn.windows):
        for scope, names in known.items():
            problems += [
                Problem(
                    f"windows[{i}].{scope}[{j}]",
                    f"unknown {scope[:-1]} {name!r}; this release has {', '.join(names)}",
                )
                for j, name in enumerate(getattr(window, scope))
                if name not in names
            ]
        if window.releases and defn.name not in window.releases:
            problems.append(
                Problem(
                    f"windows[{i}].releases",
                    f"this window is in release {defn.name}'s definition but names only "
                    f"{', '.join(window.releases)}, so it never applies; remove releases or name {defn.name}",
                )
            )
    return problems


def _distinct_problems(defn: ReleaseDefinition) -> list[Problem]:
    """``distinct_across_environments`` gates whose quorum the approvers of the earlier environments (drawn from
    the same people) leave unreachable: each earlier environment needs its own approvers when it is distinct
    too, else they may be the same people."""
    problems: list[Problem] = []
    used = 0  # fewest distinct people the environments before this one need
    earlier: list[set[str]] = []
    for i, env in enumerate(defn.environments):
        need = max((g.min_approvals for g in env.gates if g.type == "approval"), default=0)
        for j, gate in enumerate(env.gates):
            if gate.type != "approval" or not gate.distinct_across_environments or not earlier:
                continue
            pool = set(gate.eligible(defn.approver_groups))
            before = used if all(people <= pool for people in earlier) else 0
            spare = 1 if gate.separation_of_duties else 0
            if before and gate.min_approvals > len(pool) - spare - before:
                problems.append(
                    Problem(
                        f"environments[{i}].gates[{j}].distinct_across_environments",
                        f"cannot be satisfied: {len(pool)} eligible approver(s), at least {before} of them approve "
                        f"earlier environments and may not approve here, {gate.min_approvals} needed"
                        + (" (whoever triggers the run cannot approve)" if spare else "")
                        + "; add approvers or lower min_approvals",
                    )
                )
        distinct = any(g.type == "approval" and g.distinct_across_environments for g in env.gates)
        used = used + need if distinct else max(used, need)
        people = {u for g in env.gates if g.type == "approval" for u in g.eligible(defn.approver_groups)}
        if people:
            earlier.append(people)
    return problems


def _gate_problems(defn: ReleaseDefinition) -> list[Problem]:
    """Each environment's gates have their own names, and each gate type's own load-time checks pass."""
    problems: list[Problem] = []
    for i, env in enumerate(defn.environments):
        names = [g.name for g in env.gates]
        for j, gate in enumerate(env.gates):
            where = f"environments[{i}].gates[{j}]"
            if gate.name in names[:j]:
                problems.append(
                    Problem(
                        f"{where}.name",
                        f"duplicate gate name {gate.name!r} in {env.name}; "
                        "give each gate of an environment its own name",
                    )
                )
            problems += [Problem(f"{where}.{key}", message) for key, message in gate.problems(defn.approver_groups)]
    return problems


def _cycle_problems(defn: ReleaseDefinition) -> list[Problem]:
    sorter = graphlib.TopologicalSorter({c.name: c.depends_on for c in defn.components})
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = list(reversed(exc.args[1]))
        return [
            Problem("components", f"dependency cycle: {' -> '.join(cycle)}; remove one of these depends_on entries")
        ]
    return []


def _duplicates(key: str, names: list[str], what: str) -> list[Problem]:
    problems = []
    for i, name in enumerate(names):
        if name in names[:i]:
            first = names.index(name)
            problems.append(
                Problem(
                    f"{key}[{i}].name",
                    f"duplicate {what} name {name!r} (first at {key}[{first}]); names must be unique",
                )
            )
    return problems


def maintenance_problems(defn: ReleaseDefinition, now: datetime) -> list[Problem]:
    """Environments whose maintenance windows (own and shared) never leave ``expected_duration`` to deploy in
    the next 400 days: every deploy there would wait forever."""
    problems: list[Problem] = []
    until = now + MAINTENANCE_HORIZON
    for i, env in enumerate(defn.environments):
        for comp in defn.components:
            windows = [
                w for w in defn.windows if w.kind == "maintenance" and w.applies_to(env.name, defn.name, comp.name)
            ]
            if not windows or any(_room(w, now, until, env.expected_duration) for w in windows):
                continue
            longest = max(_length(w) for w in windows)
            if longest < env.expected_duration:
                why = (
                    f"expected_duration {format_duration(env.expected_duration)} is longer than every maintenance "
                    f"window of {env.name} (the longest lasts {format_duration(longest)}); shorten it or "
                    "lengthen a window"
                )
            else:
                left = f" with {format_duration(env.expected_duration)} left" if env.expected_duration else ""
                why = (
                    f"no maintenance window of {env.name} ({', '.join(w.name for w in windows)}) opens{left} in "
                    "the next 400 days, so every deploy there would wait forever; add a window that is still to come"
                )
            key = "expected_duration" if env.expected_duration and longest < env.expected_duration else "name"
            problems.append(Problem(f"environments[{i}].{key}", why))
            break
    return problems


def _room(window: Window, now: datetime, until: datetime, expected: timedelta) -> bool:
    """Whether some opening of ``window`` in [now, until) leaves ``expected`` to deploy."""
    for count, occ in enumerate(window.occurrences(now, until)):
        if occ.end - max(occ.start, now) >= expected and occ.end > now:
            return True
        if count > 1000:
            return False
    return False


def _length(window: Window) -> timedelta:
    if window.start is not None and window.end is not None:
        return to_utc(window.end, window.zone) - to_utc(window.start, window.zone)
    return window.duration or timedelta(0)
