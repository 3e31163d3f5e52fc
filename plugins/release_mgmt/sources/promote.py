"""``promote`` version source: whatever another environment runs now (its last known good version in the
deployment record), by default the environment before the run's first."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from release_mgmt.errors import SourceError
from release_mgmt.sources.base import Resolved, SourceContext, SourceModel


class PromoteSource(SourceModel):
    """The version is the one ``from`` (default: the environment before the run's first) runs now."""

    type: Literal["promote"]
    from_environment: str | None = Field(
        default=None,
        alias="from",
        pattern=r"^[a-z][a-z0-9_-]{0,49}$",
        description="The environment whose running version is deployed (default: the one before the run's first).",
    )

    def describe(self) -> str:
        return f"promote: what {self.from_environment or 'the previous environment'} runs now"

    def resolve(self, ctx: SourceContext) -> Resolved:
        source = self.from_environment or ctx.previous_environment
        if source is None:
            raise SourceError(
                f"promote: the run starts at {ctx.first_environment}, the first environment, so there is no "
                "environment to promote from; type the version in the trigger form or start the run later"
            )
        version = ctx.recorded(source)
        if not version:
            raise SourceError(f"promote: {ctx.component} has no successful deployment in {source} yet")
        return Resolved(ctx.component, "promote", f"deployment record of {source}", version)
