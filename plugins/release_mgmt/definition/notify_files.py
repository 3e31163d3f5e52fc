"""A definition's notification rules checked when it loads (not at 3 a.m.): shared rule files
(include/notify/<name>.yaml) added, the directory (include/directory.yaml) read, and every channel, recipient
and address a rule needs found. Errors name the file, the line and the key path."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from release_mgmt.definition import yaml_io
from release_mgmt.definition.models import ReleaseDefinition
from release_mgmt.definition.notify_rules import EMAIL, ROLES, Directory, NotifyRule, SharedRules
from release_mgmt.definition.shared import M, load_model, loc_from_path
from release_mgmt.errors import DefinitionError, Problem

DIRECTORY_FILE = "directory.yaml"
RULES_FOLDER = "notify"


def with_notify(
    defn: ReleaseDefinition, path: Path, shown: str, node: yaml.Node | None, include_dir: Path
) -> ReleaseDefinition:
    """The definition with its shared rules added (release-wide, after its own) and the directory attached; a
    definition without rules is returned as it is."""
    shared: list[tuple[Path, SharedRules]] = []
    for i, name in enumerate(defn.notify_routes):
        file = include_dir / RULES_FOLDER / f"{name}.yaml"
        if not file.is_file():
            known = sorted(p.stem for p in file.parent.glob("*.yaml")) if file.parent.is_dir() else []
            message = f"no shared rules {yaml_io.display_path(file)}; known: {', '.join(known) or 'none'}"
            where = ("notify_routes", i)
            raise DefinitionError(shown, [Problem(f"notify_routes[{i}]", message, yaml_io.line_of(node, where))], path)
        shared.append((file, _cached(file, SharedRules)))
    scoped = list(_scoped(defn))
    if not shared and not scoped:
        return defn
    directory_file = include_dir / DIRECTORY_FILE
    if not directory_file.is_file():
        first = scoped[0][0] if scoped else "notify_routes"
        message = (
            f"notification rules need the directory {yaml_io.display_path(directory_file)} (channels: the Airflow "
            "connections to send through; users: their e-mail and chat handles); create it"
        )
        raise DefinitionError(shown, [Problem(first, message, yaml_io.line_of(node, loc_from_path(first)))], path)
    directory = _cached(directory_file, Directory)
    problems = rule_problems(defn, scoped, directory)
    if problems:
        lined = [dataclasses.replace(p, line=yaml_io.line_of(node, loc_from_path(p.path))) for p in problems]
        raise DefinitionError(shown, lined, path)
    rules = list(defn.notify)
    for file, routes in shared:  # checked against the definition that uses them, reported under their own file
        found = rule_problems(defn, [(f"rules[{j}]", "", r) for j, r in enumerate(routes.rules)], directory)
        if found:
            _, shared_node = yaml_io.parse(yaml_io.read_small(file))
            lined = [dataclasses.replace(p, line=yaml_io.line_of(shared_node, loc_from_path(p.path))) for p in found]
            raise DefinitionError(yaml_io.display_path(file), lined, file)
        rules.extend(routes.rules)
    updated = defn.model_copy(update={"notify": tuple(rules)})
    updated._directory = directory
    return updated


#: (file, model) -> ((mtime_ns, size), loaded): every definition of a parse shares one read of the directory
_LOADED: dict[tuple[str, str], tuple[tuple[int, int], Any]] = {}


def _cached(file: Path, model: type[M]) -> M:
    """``load_model`` once per file version in this process (a thousand notifying releases read the directory
    once per parse, not a thousand times); an error is never cached, so it is reported for every release."""
    stat = file.stat()
    key, version = (str(file.resolve()), model.__name__), (stat.st_mtime_ns, stat.st_size)
    found = _LOADED.get(key)
    if found is not None and found[0] == version:
        loaded: M = found[1]
        return loaded
    loaded = load_model(file, model)
    _LOADED[key] = (version, loaded)
    return loaded


def _scoped(defn: ReleaseDefinition) -> Iterator[tuple[str, str, NotifyRule]]:
    """(key path, environment or "" for release-wide, rule) of every rule written in the definition."""
    for i, rule in enumerate(defn.notify):
        yield f"notify[{i}]", "", rule
    for e, env in enumerate(defn.environments):
        for i, rule in enumerate(env.notify):
            yield f"environments[{e}].notify[{i}]", env.name, rule


def rule_problems(
    defn: ReleaseDefinition, rules: list[tuple[str, str, NotifyRule]], directory: Directory
) -> list[Problem]:
    """What makes rules unusable: unknown channels, groups and users, roles the scope does not have, and e-mail
    channels with nobody (or someone without an address) to write to."""
    problems: list[Problem] = []
    for where, env, rule in rules:
        for k, recipient in enumerate(rule.to):
            problem = _recipient_problem(defn, env, recipient, directory)
            if problem:
                problems.append(Problem(f"{where}.to[{k}]", problem))
        kinds = set()
        for k, channel in enumerate(rule.channels):
            if channel not in directory.channels:
                known = ", ".join(directory.channels) or "none"
                problems.append(
                    Problem(
                        f"{where}.channels[{k}]",
                        f"unknown channel {channel!r}; the directory ({DIRECTORY_FILE}) has: {known}",
                    )
                )
            else:
                kinds.add(directory.channels[channel].kind)
        if "email" in kinds:
            problems += _email_problems(defn, where, env, rule, directory)
    return problems


def _recipient_problem(defn: ReleaseDefinition, env: str, recipient: str, directory: Directory) -> str:
    scope = env or "this release"
    group = recipient.removeprefix("group:")
    if recipient.startswith("group:") and group not in defn.approver_groups:
        known = ", ".join(sorted(defn.approver_groups)) or "none"
        return f"unknown approver group {group!r}; this release has: {known}"
    if recipient == "approvers" and not approvers(defn, env):
        return f"{scope} has no approval gate, so no approvers; name users or groups instead"
    if recipient == "authorizers" and not authorizers(defn, env):
        return f"{scope} opens no change, so it has no authorizers; name users or groups instead"
    named_user = not (recipient.startswith("group:") or recipient in ROLES or EMAIL.match(recipient))
    if named_user and recipient not in directory.users:
        return f"unknown user {recipient!r}: add it to {DIRECTORY_FILE} (users:), or write an e-mail address"
    return ""


def _email_problems(
    defn: ReleaseDefinition, where: str, env: str, rule: NotifyRule, directory: Directory
) -> list[Problem]:
    """An e-mail rule's people must have addresses (the roles that depend on the event are checked when sent)."""
    if not rule.to:
        return [Problem(f"{where}.to", "an email channel needs recipients: add to: (users, group:<name>, approvers…)")]
    problems = []
    for k, recipient in enumerate(rule.to):
        people = _people(defn, env, recipient)
        lacking = sorted(p for p in people if not (p in directory.users and directory.users[p].email))
        if lacking:
            problems.append(
                Problem(
                    f"{where}.to[{k}]",
                    f"{', '.join(lacking)} ha{'s' if len(lacking) == 1 else 've'} no email in {DIRECTORY_FILE}; "
                    "add email: under users:",
                )
            )
    return problems


def _people(defn: ReleaseDefinition, env: str, recipient: str) -> set[str]:
    if recipient.startswith("group:"):
        return set(defn.approver_groups.get(recipient.removeprefix("group:"), ()))
    if recipient == "approvers":
        return set(approvers(defn, env))
    if recipient == "authorizers":
        return set(authorizers(defn, env))
    if recipient in ROLES or EMAIL.match(recipient):
        return set()
    return {recipient}


def approvers(defn: ReleaseDefinition, env: str) -> list[str]:
    """Everyone who may approve a gate of ``env`` (every environment when ""), sorted."""
    names: set[str] = set()
    for environment in defn.environments:
        if env in ("", environment.name):
            for gate in environment.gates:
                eligible = getattr(gate, "eligible", None)
                names.update(eligible(defn.approver_groups) if eligible else ())
    return sorted(names)


def authorizers(defn: ReleaseDefinition, env: str) -> list[str]:
    """Everyone who may authorize the change of ``env`` (every environment when ""), sorted."""
    names: set[str] = set()
    for environment in defn.environments:
        if env in ("", environment.name) and environment.change is not None:
            change = environment.change
            names.update(change.authorizers.names(defn.approver_groups, change.assignment_group))
    return sorted(names)
