"""Version sources: one module each; ``SOURCE_TYPES`` is the registry the definition's ``source`` union is built
from. A source resolves a component's version in the run's first task (``preflight``); the trigger form may
still give the version explicitly.

Adding a source type: write its module (a ``SourceModel`` subclass with a ``Literal`` ``type``, ``describe``
and ``resolve``) and add the class to ``SOURCE_TYPES``.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from release_mgmt.sources.base import Resolved, SourceContext, SourceModel
from release_mgmt.sources.endpoint import HttpSource
from release_mgmt.sources.git import GitSource
from release_mgmt.sources.oci import OciSource
from release_mgmt.sources.promote import PromoteSource

SOURCE_TYPES: tuple[type[SourceModel], ...] = (GitSource, OciSource, HttpSource, PromoteSource)


def source_type_names() -> list[str]:
    """The ``type`` tags a source may carry, in registry order."""
    return [cls.model_fields["type"].annotation.__args__[0] for cls in SOURCE_TYPES]  # type: ignore[union-attr]


Source: Any = Annotated[Union[SOURCE_TYPES], Field(discriminator="type")]  # noqa: UP007
SOURCE_ADAPTER: TypeAdapter[SourceModel] = TypeAdapter(Source)

__all__ = [
    "SOURCE_ADAPTER",
    "SOURCE_TYPES",
    "Resolved",
    "Source",
    "SourceContext",
    "SourceModel",
    "source_type_names",
]
