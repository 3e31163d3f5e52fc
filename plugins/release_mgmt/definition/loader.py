"""Read release definition files: YAML -> models -> checks across keys; every problem reported."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from release_mgmt.definition import notify_files, shared, yaml_io
from release_mgmt.definition.budget import BudgetExceededError, time_budget
from release_mgmt.definition.checks import maintenance_problems, semantic_problems, shell_problems
from release_mgmt.definition.messages import problems_from
from release_mgmt.definition.models import MAX_COMPONENTS, MAX_ENVIRONMENTS, NAME_PATTERN, ReleaseDefinition
from release_mgmt.definition.owners import choose_owner
from release_mgmt.definition.yaml_io import display_path
from release_mgmt.errors import DefinitionError, Problem

SUFFIXES = (".yaml", ".yml")
#: the largest lists and mappings of a definition (models.py says the same; checked here before validating them)
LIST_LIMITS = {
    "components": MAX_COMPONENTS,
    "environments": MAX_ENVIRONMENTS,
    "windows": 200,
    "parameters": 50,
    "approver_groups": 200,
}
#: seconds one definition may take to read, and again to build (a real one takes tens of milliseconds)
BUDGET_SECONDS = 5.0
#: top-level keys left to the author (anchors for YAML merge keys: ``x-defaults: &defaults {...}``)
EXTENSION_PREFIX = "x-"
__all__ = [
    "LoadReport",
    "LoadedDefinition",
    "display_path",
    "load_file",
    "load_paths",
    "semantic_problems",
    "shell_problems",
]


@dataclass(frozen=True)
class LoadedDefinition:
    """A valid definition and the file it came from."""

    path: Path
    display: str
    definition: ReleaseDefinition


@dataclass(frozen=True)
class LoadReport:
    """Every definition of a folder: the valid ones and the errors of the others."""

    loaded: tuple[LoadedDefinition, ...]
    errors: tuple[DefinitionError, ...]


def definition_files(paths: Iterable[Path]) -> list[Path]:
    """The definition files named, folders expanded to their *.yaml/*.yml files, sorted."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file()))
        else:
            files.append(path)
    return files


#: a top-level ``name: x`` line (plain or quoted), as nearly every definition writes it
_NAME_LINE = re.compile(r"""^name:[ \t]*(["']?)([a-z][a-z0-9_-]{0,49})\1[ \t]*(?:#.*)?$""", re.MULTILINE)


def declared_name(path: Path) -> str | None:
    """The release name a file declares on a top-level ``name:`` line, read without parsing YAML (None when it
    is not written that way, or the file cannot be read)."""
    try:
        with path.open("rb") as handle:  # never more than a definition may hold
            match = _NAME_LINE.search(handle.read(yaml_io.MAX_BYTES).decode("utf-8", errors="replace"))
    except OSError:
        return None
    return match.group(2) if match else None


def files_named(paths: Iterable[Path], name: str) -> list[Path] | None:
    """The files that declare release ``name`` on a top-level ``name:`` line, without parsing any YAML (what a
    worker needs to build one release's DAG). None when some file's name cannot be read that way: only a full
    load then says which files claim the name."""
    found: list[Path] = []
    for path in definition_files(paths):
        declared = declared_name(path)
        if declared is None:
            return None
        if declared == name:
            found.append(path)
    return found


def load_file(path: Path, display: str | None = None, calendars_dir: Path | None = None) -> LoadedDefinition:
    """Load and check one definition file; raise :class:`DefinitionError` with every problem.

    Shared calendars are read from ``calendars_dir`` (default: ``calendars/`` beside the
    definition's folder, i.e. include/calendars for include/releases).
    """
    shown = display or display_path(path)
    try:
        text = yaml_io.read_small(path)
    except ValueError as exc:  # before reading: a huge file must not cost the other releases their parse time
        raise DefinitionError(shown, path=path, problems=[Problem("", str(exc), line=1)]) from None
    try:
        data, node = yaml_io.parse(text)
    except (yaml.YAMLError, yaml_io.LimitError) as exc:
        raise DefinitionError(shown, path=path, problems=[yaml_io.problem(exc, text)]) from None
    if data is None:
        raise DefinitionError(
            shown,
            path=path,
            problems=[
                Problem("", "the file is empty; write a release definition (name, owner, components, environments)")
            ],
        )
    if not isinstance(data, dict):
        raise DefinitionError(
            shown,
            path=path,
            problems=[
                Problem(
                    "",
                    "the top level must be a mapping of keys to values "
                    f"(name, owner, components, environments), not a {_kind(data)}",
                    line=1,
                )
            ],
        )
    try:
        return LoadedDefinition(path=path, display=shown, definition=_checked(data, node, path, shown, calendars_dir))
    except DefinitionError as exc:
        exc.name = data["name"] if isinstance(data.get("name"), str) else None
        raise


def _checked(
    data: dict[str, Any], node: yaml.Node | None, path: Path, shown: str, calendars_dir: Path | None
) -> ReleaseDefinition:
    """The definition of a file's mapping, with its shared groups and calendars, every check passed."""
    data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith(EXTENSION_PREFIX))}
    too_many = [
        Problem(
            key, f"{len(data[key]):,} items; at most {limit} (split the release)", line=yaml_io.line_of(node, (key,))
        )
        for key, limit in LIST_LIMITS.items()
        if isinstance(data.get(key), list | dict) and len(data[key]) > limit
    ]
    if too_many or len(data) > len(ReleaseDefinition.model_fields) + 20:  # before validating thousands of items
        keys = len(data)
        too_many = too_many or [Problem("", f"{keys:,} top-level keys; a definition has at most 15 (see the schema)")]
        raise DefinitionError(shown, too_many, path)
    try:
        definition = ReleaseDefinition.model_validate(data)
    except ValidationError as exc:
        problems = sorted((_with_line(p, node) for p in problems_from(exc, data)), key=lambda p: p.line or 0)
        raise DefinitionError(shown, problems, path) from None
    if definition.approver_groups_file:
        definition = shared.with_shared_groups(definition, path, shown, node)
    problems = [_with_line(p, node) for p in semantic_problems(definition)]
    if problems:
        raise DefinitionError(shown, problems, path)
    if definition.calendars:
        definition = shared.with_calendars(definition, path, shown, node, calendars_dir)
    problems = [_with_line(p, node) for p in maintenance_problems(definition, datetime.now(UTC))]
    if problems:
        raise DefinitionError(shown, problems, path)
    if definition.schedule is not None:
        _check_schedule(definition, path, shown, node)
    include_dir = calendars_dir.parent if calendars_dir else path.parent.parent
    return notify_files.with_notify(definition, path, shown, node, include_dir)


def _check_schedule(defn: ReleaseDefinition, path: Path, shown: str, node: yaml.Node | None) -> None:
    """A scheduled release names an environment that has maintenance windows."""
    env = defn.schedule.at_maintenance_windows if defn.schedule else ""
    names = [e.name for e in defn.environments]
    where = ("schedule", "at_maintenance_windows")
    if env not in names:
        message = f"unknown environment {env!r}; this release has {', '.join(names)}"
    elif not any(w.kind == "maintenance" and w.applies_to(env, defn.name) for w in defn.windows):
        message = f"{env} has no maintenance window (define one in windows or a calendar) to schedule runs at"
    else:
        return
    raise DefinitionError(shown, [Problem(".".join(where), message, line=yaml_io.line_of(node, where))], path)


def over_budget(shown: str, path: Path, exc: BudgetExceededError) -> DefinitionError:
    """A definition that took longer than its time budget to read or build (a designed limit, not a bug)."""
    message = (
        f"{exc}: one definition may not cost the other releases their DAGs (the DAG file's import timeout is "
        "shared); split it or simplify its windows"
    )
    return DefinitionError(shown, [Problem("", message)], path)


def unusable(shown: str, path: Path, what: str, exc: BaseException) -> DefinitionError:
    """A file that made reading, planning or building fail in an unforeseen way: its own error, in one sentence
    (the exception's kind and a short excerpt, never a traceback)."""
    text = " ".join(str(exc).split())[:200] or "no detail"
    message = f"{what} ({type(exc).__name__}: {text}); simplify the file where it is unusual, then validate again"
    error = DefinitionError(shown, [Problem("", message)], path)
    error.unforeseen = True
    return error


def load_paths(paths: Iterable[Path], root: Path | None = None, calendars_dir: Path | None = None) -> LoadReport:
    """Load every definition named; a broken file never stops the others from loading. Files declaring one
    release name: the owner (definition/owners.py) keeps it, valid or not; each other one is an error naming it
    (``duplicate`` set, so that its DAG takes an id of its own)."""
    results: list[LoadedDefinition | DefinitionError] = []
    for path in definition_files(paths):
        shown = display_path(path, root)
        try:
            with time_budget(BUDGET_SECONDS, "reading this definition"):
                results.append(load_file(path, shown, calendars_dir))
        except DefinitionError as exc:
            results.append(exc)
        except BudgetExceededError as exc:
            results.append(over_budget(shown, path, exc))
        except Exception as exc:  # noqa: BLE001 - whatever one file does, it costs only its own DAG
            results.append(unusable(shown, path, "could not be read", exc))
    claims: dict[str, list[LoadedDefinition | DefinitionError]] = {}
    for result in results:
        name = result.definition.name if isinstance(result, LoadedDefinition) else result.name
        if name and re.fullmatch(NAME_PATTERN, name):
            claims.setdefault(name, []).append(result)
    owners = {
        name: choose_owner(name, [r.path for r in claimants]) if len(claimants) > 1 else claimants[0].path
        for name, claimants in claims.items()
    }
    loaded: list[LoadedDefinition] = []
    errors: list[DefinitionError] = []
    for result in results:
        name = result.definition.name if isinstance(result, LoadedDefinition) else result.name
        owner = owners.get(name or "")
        if name and owner is not None and owner != result.path:
            first = next(r for r in claims[name] if r.path == owner)
            errors.append(
                _duplicate(result, name, first.display if isinstance(first, LoadedDefinition) else first.file)
            )
        elif isinstance(result, LoadedDefinition):
            loaded.append(result)
        else:
            errors.append(result)
    return LoadReport(tuple(loaded), tuple(errors))


def _duplicate(result: LoadedDefinition | DefinitionError, name: str, owner: str) -> DefinitionError:
    """A claimant's error: the name is the owner's (its own problems too, when it has others)."""
    message = f"release name {name!r} is already used by {owner}; give each release its own name"
    shown, path = (result.display, result.path) if isinstance(result, LoadedDefinition) else (result.file, result.path)
    own = list(result.problems) if isinstance(result, DefinitionError) else []
    duplicate = DefinitionError(shown, [Problem("name", message, line=1), *own], path)
    duplicate.name = name
    duplicate.duplicate = True
    return duplicate


def _kind(data: Any) -> str:
    return "list" if isinstance(data, list) else type(data).__name__


def _with_line(problem: Problem, node: yaml.Node | None) -> Problem:
    return dataclasses.replace(problem, line=yaml_io.line_of(node, shared.loc_from_path(problem.path)))
