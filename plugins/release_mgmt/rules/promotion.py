"""Which versions a run may deploy where: the promotion rule (a run starting after the first environment
deploys only what the environment before it runs) and the superseded rule (never put back an older release
over what a later-triggered run deployed)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol


class Recorded(Protocol):
    """What the deployment record says about a component in an environment."""

    @property
    def version(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def run_after(self) -> str: ...

    def describe(self) -> str: ...


def promotion_problems(versions: Mapping[str, str], source: str, recorded: Mapping[str, Recorded | None]) -> list[str]:
    """Why each version may not be promoted from ``source`` (empty: all may). ``recorded``: per component,
    what ``source`` runs."""
    problems = []
    for component, version in versions.items():
        record = recorded.get(component)
        if record is None:
            problems.append(f"{component} {version} was never deployed to {source}")
        elif record.version != version:
            problems.append(f"{component} {version} is not what {source} runs ({record.describe()})")
    return problems


def superseded(record: Recorded | None, *, run_id: str, run_after: str, version: str) -> bool:
    """Whether deploying ``version`` now would put an older release back: the environment runs another
    version, deployed by a run triggered after this one."""
    if record is None or record.run_id == run_id or not (record.run_after and run_after):
        return False
    if record.version == version:  # the same version again moves nothing backwards
        return False
    return datetime.fromisoformat(record.run_after) > datetime.fromisoformat(run_after)
