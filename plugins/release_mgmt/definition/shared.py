"""The files a definition shares with others: calendars (include/calendars) and approver groups files, each read
with the same limits as a definition and reported under its own name, line and key path."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from release_mgmt.definition import yaml_io
from release_mgmt.definition.calendars import CalendarFile
from release_mgmt.definition.messages import calendar_problems, key_path
from release_mgmt.definition.models import ReleaseDefinition
from release_mgmt.errors import DefinitionError, Problem
from release_mgmt.gates.approval import User
from release_mgmt.gates.base import GroupName

M = TypeVar("M", bound=BaseModel)


def with_calendars(
    defn: ReleaseDefinition, path: Path, shown: str, node: yaml.Node | None, calendars_dir: Path | None
) -> ReleaseDefinition:
    """The definition with the windows of its shared calendars added after its own."""
    folder = calendars_dir or path.parent.parent / "calendars"
    windows = list(defn.windows)
    for i, name in enumerate(defn.calendars):
        file = folder / f"{name}.yaml"
        if not file.is_file():
            known = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
            raise DefinitionError(
                shown,
                [
                    Problem(
                        f"calendars[{i}]",
                        f"no calendar {file}; known calendars: {', '.join(known) or 'none'}",
                        line=yaml_io.line_of(node, ("calendars", i)),
                    )
                ],
                path,
            )
        windows.extend(load_calendar(file).windows)
    return defn.model_copy(update={"windows": tuple(windows)})


def load_calendar(file: Path) -> CalendarFile:
    """One shared calendar file; DefinitionError naming that file, line and key path."""
    return load_model(file, CalendarFile)


def read_yaml(file: Path, shown: str) -> tuple[Any, yaml.Node | None]:
    """A file's data and node tree, read with a definition's limits; DefinitionError naming ``shown``."""
    try:
        text = yaml_io.read_small(file)
        return yaml_io.parse(text)
    except ValueError as exc:
        raise DefinitionError(shown, [Problem("", str(exc))], file) from None
    except (yaml.YAMLError, yaml_io.LimitError) as exc:
        raise DefinitionError(shown, [yaml_io.problem(exc, text)], file) from None


def load_model(file: Path, model: type[M]) -> M:
    """One shared file (calendar, directory, notification rules) as ``model``; DefinitionError naming that file,
    line and key path."""
    shown = yaml_io.display_path(file)
    data, node = read_yaml(file, shown)
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        problems = [
            dataclasses.replace(p, line=yaml_io.line_of(node, loc_from_path(p.path)))
            for p in calendar_problems(exc, data)
        ]
        raise DefinitionError(shown, problems, file) from None


GROUPS_ADAPTER: TypeAdapter[dict[str, tuple[str, ...]]] = TypeAdapter(dict[GroupName, tuple[User, ...]])


def with_shared_groups(defn: ReleaseDefinition, path: Path, shown: str, node: yaml.Node | None) -> ReleaseDefinition:
    """The definition with the groups of its approver_groups_file merged in (a group defined twice is an error)."""
    shared = path.parent / str(defn.approver_groups_file)
    where = Problem("approver_groups_file", "", line=yaml_io.line_of(node, ("approver_groups_file",)))
    base = path.resolve().parent.parent
    if not shared.resolve().is_relative_to(base):  # a definition may not make the DAG processor read any file
        message = (
            f"must name a file inside {base.name}/ (the folder above the definitions), e.g. ../approver_groups.yaml"
        )
        raise DefinitionError(shown, [dataclasses.replace(where, message=message)], path)
    try:
        text = yaml_io.read_small(shared)
        data, _ = yaml_io.parse(text)
    except ValueError as exc:
        raise DefinitionError(shown, [dataclasses.replace(where, message=str(exc))], path) from None
    except (yaml.YAMLError, yaml_io.LimitError) as exc:
        raise DefinitionError(str(shared), [yaml_io.problem(exc, text)], shared) from None
    try:
        groups = GROUPS_ADAPTER.validate_python(data or {})
    except ValidationError as exc:
        raise DefinitionError(
            str(shared), [Problem(key_path(tuple(e["loc"])), e["msg"]) for e in exc.errors()], shared
        ) from None
    twice = sorted(groups.keys() & defn.approver_groups.keys())
    if twice:
        message = f"group(s) {', '.join(twice)} defined both here (approver_groups) and in {shared.name}"
        raise DefinitionError(shown, [dataclasses.replace(where, message=message)], path)
    return defn.model_copy(update={"approver_groups": {**groups, **defn.approver_groups}})


def loc_from_path(path: str) -> tuple[Any, ...]:
    """``components[0].deploy`` -> ``("components", 0, "deploy")``; a key that itself holds brackets or dots (an
    unknown key such as ``w[indows``) stays text, at worst pointing at its parent's line."""
    loc: list[Any] = []
    for part in path.split("."):
        name, indexes = _INDEXED.match(part).groups()  # type: ignore[union-attr]
        if name:
            loc.append(name)
        loc.extend(int(i) for i in re.findall(r"\d+", indexes))
    return tuple(loc)


_INDEXED = re.compile(r"^(.*?)((?:\[\d+\])*)$", re.DOTALL)
