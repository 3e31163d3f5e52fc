"""Release trains (include/trains/<name>.yaml): several releases moved together through one promotion order, in
an order given by dependencies between them, under the train's own gates and one change per environment. A train
names its members' releases; each member keeps its own components, deploy, checks and rollback.

Loading a train checks it against the releases that exist: every member is a valid release, dependencies name
members and form no cycle, every member has each of the train's environments in the train's order, pinned
versions name the member's components. Each problem names the file, line and key path."""

from __future__ import annotations

import dataclasses
import graphlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError

from release_mgmt.definition import yaml_io
from release_mgmt.definition.calendars import Window
from release_mgmt.definition.checks import semantic_problems
from release_mgmt.definition.messages import problems_from
from release_mgmt.definition.models import ChangeConfig, Name, ReleaseDefinition, Strict, Version
from release_mgmt.definition.shared import loc_from_path, read_yaml, with_calendars
from release_mgmt.errors import DefinitionError, Problem
from release_mgmt.gates import Gate
from release_mgmt.gates.approval import User
from release_mgmt.gates.base import GroupName

MAX_MEMBERS = 30


class TrainMember(Strict):
    """One release of the train."""

    release: Name = Field(description="The member's release name (include/releases).")
    after: tuple[Name, ...] = Field(
        default=(), description="Members whose stage of an environment must succeed before this one's starts."
    )
    versions: dict[Name, Version] = Field(
        default_factory=dict,
        description="Versions pinned by the train, per component (others: the component's source or default).",
    )


class TrainEnvironment(Strict):
    """A stage of the train's promotion order, with the train's controls there."""

    name: Name
    description: str = ""
    gates: tuple[Gate, ...] = Field(default=(), max_length=20, description="The train's gates, before any member.")
    change: ChangeConfig | None = Field(
        default=None, description="One change request for the whole train here, listing every member's versions."
    )
    on_freeze: Literal["wait", "fail"] = "wait"
    outside_maintenance: Literal["wait", "fail"] = "wait"


class TrainDefinition(Strict):
    """A release train: its members, its promotion order, its controls and what a member's failure does."""

    name: Name = Field(description="Train name; the DAG id is train_<name>.")
    description: str = ""
    owner: str = Field(min_length=1, max_length=100)
    members: tuple[TrainMember, ...] = Field(min_length=1, max_length=MAX_MEMBERS)
    environments: tuple[TrainEnvironment, ...] = Field(
        min_length=1, max_length=20, description="In promotion order; each member must have them in this order."
    )
    on_member_failure: Literal["rollback_train", "stop", "continue"] = Field(
        default="stop",
        description="When a member fails in an environment (it rolls itself back): rollback_train reverts the "
        "members already deployed there to their last known good versions; stop starts no other member there; "
        "continue lets independent members go on. The next environment starts only if every member succeeded.",
    )
    approver_groups: dict[GroupName, tuple[User, ...]] = Field(default_factory=dict, max_length=200)
    calendars: tuple[Name, ...] = Field(default=(), description="Shared calendars whose windows bind the train.")
    windows: tuple[Window, ...] = Field(default=(), max_length=200)
    poke_seconds: int = Field(default=30, ge=5, le=600, description="How often a member's run is checked.")
    member_gates: Literal["keep", "waive"] = Field(
        default="keep",
        description="keep: each member's own gates still ask for approval in its run; waive: the train's gates "
        "stand for them (a member run started by the train passes its gates, saying so in its log).",
    )


@dataclass(frozen=True)
class LoadedTrain:
    """A valid train and the member definitions it was checked against."""

    train: TrainDefinition
    members: dict[str, ReleaseDefinition]
    source: str
    #: the train as a release whose components are its members (what the plan and DAG builder take)
    release: ReleaseDefinition


@dataclass
class TrainReport:
    loaded: list[LoadedTrain] = field(default_factory=list)
    errors: list[DefinitionError] = field(default_factory=list)


def member_order(train: TrainDefinition) -> list[str]:
    """The members in an order where each comes after those it names in ``after`` (file order among equals)."""
    sorter = graphlib.TopologicalSorter({m.release: m.after for m in train.members})
    position = {m.release: i for i, m in enumerate(train.members)}
    sorter.prepare()
    ordered: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=lambda name: position.get(name, len(position)))
        ordered += ready
        sorter.done(*ready)
    return ordered


def train_problems(train: TrainDefinition, releases: Mapping[str, ReleaseDefinition]) -> list[Problem]:
    """Everything wrong between a train and the releases that exist."""
    problems: list[Problem] = []
    names = [m.release for m in train.members]
    order = [e.name for e in train.environments]
    for i, member in enumerate(train.members):
        where = f"members[{i}]"
        if names.index(member.release) != i:
            problems.append(Problem(f"{where}.release", f"{member.release!r} is already a member of this train"))
        defn = releases.get(member.release)
        if defn is None:
            known = ", ".join(sorted(releases)[:20]) or "(none)"
            problems.append(Problem(f"{where}.release", f"unknown release {member.release!r}; valid releases: {known}"))
            continue
        problems += _member_problems(where, member, defn, names, order)
    graph: dict[str, set[str]] = {}
    for m in train.members:  # only dependencies already reported as fine: a cycle is its own problem
        graph.setdefault(m.release, set()).update(d for d in m.after if d in names and d != m.release)
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        problems.append(Problem("members", f"dependency cycle: {cycle}; remove one of these after entries"))
    for i, env in enumerate(train.environments):
        for j, gate in enumerate(env.gates):
            problems += [
                Problem(f"environments[{i}].gates[{j}].{key}", message)
                for key, message in gate.problems(train.approver_groups)
            ]
    return problems


def _member_problems(
    where: str, member: TrainMember, defn: ReleaseDefinition, names: list[str], order: list[str]
) -> list[Problem]:
    problems = []
    for j, dep in enumerate(member.after):
        if dep == member.release or dep not in names:
            problems.append(Problem(f"{where}.after[{j}]", f"{dep!r} is not another member of this train"))
    envs = [e.name for e in defn.environments]
    missing = [e for e in order if e not in envs]
    if missing:
        problems.append(
            Problem(
                f"{where}.release",
                f"release {defn.name} has no environment {', '.join(missing)} (it has {', '.join(envs)}); a train's "
                "members must have every environment of the train",
            )
        )
    elif [e for e in envs if e in order] != order:
        problems.append(
            Problem(
                f"{where}.release",
                f"release {defn.name} promotes {' -> '.join(e for e in envs if e in order)}, not the train's "
                f"{' -> '.join(order)}",
            )
        )
    components = [c.name for c in defn.components]
    for comp in member.versions:
        if comp not in components:
            problems.append(
                Problem(
                    f"{where}.versions.{comp}",
                    f"release {defn.name} has no component {comp!r} ({', '.join(components)})",
                )
            )
    return problems


def load_train(path: Path, releases: Mapping[str, ReleaseDefinition], display: str | None = None) -> LoadedTrain:
    """One train file checked against ``releases``; DefinitionError with every problem."""
    shown = display or yaml_io.display_path(path)
    data, node = read_yaml(path, shown)
    if not isinstance(data, dict):
        raise DefinitionError(shown, [Problem("", "a train file must be a mapping (name, owner, members, ...)")], path)
    try:
        train = TrainDefinition.model_validate(data)
    except ValidationError as exc:
        problems = problems_from(exc, data, TrainDefinition)
        raise DefinitionError(shown, _with_lines(problems, node), path) from None
    problems = train_problems(train, releases) + _as_release_problems(train)
    if problems:
        raise DefinitionError(shown, _with_lines(problems, node), path)
    release = with_calendars(as_release(train), path, shown, node, None)
    return LoadedTrain(train, {m.release: releases[m.release] for m in train.members}, shown, release)


#: what a member's stage "deploys" in the train's plan: never run (operators/train.py runs the member's own
#: DAG instead); it only gives the plan a deploy (and, with rollback_train, a rollback) per member
PLACEHOLDER = {"type": "command", "command": "true"}


def as_release(train: TrainDefinition) -> ReleaseDefinition:
    """The train as a release definition: one component per member (depends_on = after), the train's
    environments with its gates and changes, its windows and calendars."""
    revert = train.on_member_failure == "rollback_train"
    return ReleaseDefinition.model_validate(
        {
            "name": train.name,
            "description": train.description or f"Release train {train.name}",
            "owner": train.owner,
            "components": [
                {
                    "name": m.release,
                    "version": "train",
                    "depends_on": list(m.after),
                    "deploy": PLACEHOLDER,
                    **({"rollback": PLACEHOLDER} if revert else {}),
                }
                for m in train.members
            ],
            "environments": [
                e.model_dump(mode="json", by_alias=True, exclude={"description"}, exclude_none=True)
                | {"description": e.description}
                for e in train.environments
            ],
            "approver_groups": {k: list(v) for k, v in train.approver_groups.items()},
            "calendars": list(train.calendars),
            "windows": [w.model_dump(mode="json", by_alias=True, exclude_none=True) for w in train.windows],
            "policy": {"require_rollback": False},
        }
    )


def _as_release_problems(train: TrainDefinition) -> list[Problem]:
    """The release checks of the train's environments, gates, windows and approver groups (the train's
    environments are the release's, key for key; its members are checked above)."""
    try:
        release = as_release(train)
    except ValidationError as exc:  # a check of the train's own model should have caught it: say what, not crash
        return [Problem("", f"the train cannot be planned: {problems_from(exc, {})[0].message}")]
    return [p for p in semantic_problems(release) if not p.path.startswith("components")]


def _with_lines(problems: Iterable[Problem], node: yaml.Node | None) -> list[Problem]:
    return [
        p if p.line else dataclasses.replace(p, line=yaml_io.line_of(node, loc_from_path(p.path))) for p in problems
    ]


def load_trains(folder: Path, releases: Mapping[str, ReleaseDefinition], root: Path | None = None) -> TrainReport:
    """Every train file of ``folder``, each isolated: a broken one is an error, the others still load."""
    report = TrainReport()
    files = sorted(p for p in folder.glob("*.y*ml") if p.is_file()) if folder.is_dir() else []
    for path in files:
        try:
            report.loaded.append(load_train(path, releases, yaml_io.display_path(path, root)))
        except DefinitionError as exc:
            report.errors.append(exc)
    seen: dict[str, str] = {}
    for item in list(report.loaded):
        if item.train.name in seen:
            problem = Problem("name", f"train {item.train.name!r} is already declared in {seen[item.train.name]}")
            report.errors.append(DefinitionError(item.source, [problem], Path(item.source)))
            report.loaded.remove(item)
        else:
            seen[item.train.name] = item.source
    return report


def json_schema() -> dict[str, object]:
    """The JSON schema of a train file."""
    schema = TrainDefinition.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "release_mgmt release train"
    return schema
