"""Trigger parameters of a release run: the form's fields and their checks at run time."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from release_mgmt.definition.models import VERSION_PATTERN, VERSION_RULE
from release_mgmt.errors import ParameterError
from release_mgmt.planning import version_param


@dataclass(frozen=True)
class RunSelection:
    """What one run does: the version per component, the environments, and whether it is a dry run."""

    #: the version per component; empty for a component whose source the preflight resolves
    versions: dict[str, str]
    environments: tuple[str, ...]
    dry_run: bool
    #: the environment before the first selected one, whose record the promotion rule checks
    source_environment: str | None = None


def check_version(component: str, value: Any) -> str:
    """``value`` if it is a safe version string (it ends up in shell commands), else ParameterError."""
    if not isinstance(value, str) or not re.fullmatch(VERSION_PATTERN, value):
        raise ParameterError(
            f"parameter {version_param(component)}: {value!r} is not a valid version; a version is {VERSION_RULE}"
        )
    return value


def select(
    params: Mapping[str, Any], components: list[str], environments: list[str], sourced: Collection[str] = ()
) -> RunSelection:
    """Read and check a run's parameters against the release's components and promotion order.

    The environments must be consecutive in the promotion order. A component in ``sourced`` may come without a
    version (its source gives it). A run that starts after the
    first environment must also pass the promotion rule (checked against the deployment record).
    """
    # an empty version is left to the component's source (the preflight refuses it for a component without one)
    # an empty version of a component in ``sourced`` is left to its source (the preflight resolves it)
    versions = {
        c: "" if c in sourced and not params.get(version_param(c)) else check_version(c, params.get(version_param(c)))
        for c in components
    }
    chosen = params.get("environments")
    if chosen is None:
        chosen = list(environments)
    if not isinstance(chosen, list | tuple) or not chosen:
        raise ParameterError(
            "parameter environments: choose at least one environment, "
            f"consecutive environments of the promotion order {' -> '.join(environments)}"
        )
    unknown = [e for e in chosen if e not in environments]
    if unknown:
        raise ParameterError(
            f"parameter environments: unknown environment(s) {', '.join(map(str, unknown))}; "
            f"this release has {', '.join(environments)}"
        )
    start = environments.index(chosen[0])
    if list(chosen) != environments[start : start + len(chosen)]:
        raise ParameterError(
            f"parameter environments: {', '.join(chosen)} skips an environment of the promotion order "
            f"{' -> '.join(environments)}; choose consecutive environments "
            f"(e.g. {', '.join(environments[start : start + len(chosen)])})"
        )
    dry_run = params.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise ParameterError(f"parameter dry_run: must be true or false (got {dry_run!r})")
    return RunSelection(versions, tuple(chosen), dry_run, environments[start - 1] if start else None)
