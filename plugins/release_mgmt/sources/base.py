"""What every version source shares: its strict model base, the context it resolves in, and what it finds."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

#: a version as the definition allows it (also in definition/models.py, which imports this package)
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+:-]{0,127}$")


@dataclass(frozen=True)
class Resolved:
    """One component's version, found: where (source, reference), what (version) and its content (digest)."""

    component: str
    source: str
    reference: str
    version: str
    digest: str = ""
    #: how it was chosen: "resolved" from the source, or "override" (typed into the trigger form)
    how: str = "resolved"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class SourceContext:
    """What a source may ask while resolving: the release and component, the run's first environment and the
    one before it, and the last known good version of the component in any environment."""

    release: str
    component: str
    first_environment: str
    previous_environment: str | None
    recorded: Callable[[str], str | None]
    log: Any = None


class SourceModel(BaseModel):
    """Base of every version source; ``type`` is the discriminator of the source union."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    type: str
    #: the source can list the changes between two versions (release notes)
    has_notes: ClassVar[bool] = False

    def describe(self) -> str:
        """Where the version comes from, in a few words (plans, logs, the trigger form)."""
        raise NotImplementedError

    def resolve(self, ctx: SourceContext) -> Resolved:
        """The version to deploy now; raise :class:`release_mgmt.errors.SourceError` naming the source and why."""
        raise NotImplementedError


def checked_version(found: str, where: str) -> str:
    """``found`` when it can be a version (it reaches deploy steps), else SourceError naming ``where``."""
    from release_mgmt.errors import SourceError, quoted

    if not VERSION_RE.fullmatch(found):
        raise SourceError(
            f"{where} gave {quoted(found)}, which is not a version (letters, digits, '.', '_', '+', ':' or '-', "
            "starting with a letter or digit, at most 128 characters)"
        )
    return found
