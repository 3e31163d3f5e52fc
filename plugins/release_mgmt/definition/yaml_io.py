"""Safe YAML for definitions: duplicate keys rejected, numbers and dates kept as strings.

Versions such as ``1.10`` must not become the float ``1.1``, and ``on``/``yes`` must not become
booleans: only ``true``/``false`` and ``null`` are typed; every other scalar stays a string and
the pydantic models convert the few that are numbers.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class DefinitionLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2-style booleans, no implicit numbers or dates, unique keys."""


DefinitionLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag
        not in (
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
            "tag:yaml.org,2002:timestamp",
            "tag:yaml.org,2002:bool",
        )
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
DefinitionLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf"))


def _construct_mapping(loader: DefinitionLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {seen[key].start_mark.line + 1}); remove one of them",
                key_node.start_mark,
            )
        seen[key] = key_node
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


DefinitionLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class FastDefinitionLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The same dialect on libyaml's parser (when PyYAML has it): several times faster to read."""


FastDefinitionLoader.yaml_implicit_resolvers = DefinitionLoader.yaml_implicit_resolvers
FastDefinitionLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse(text: str) -> tuple[Any, yaml.Node | None]:
    """The data and the node tree (for line numbers) of one YAML document, read once: the data is constructed
    from the node tree. A document libyaml refuses is read again by the pure-Python parser, whose messages the
    error reports (and their golden tests) use."""
    try:
        return _read(text, FastDefinitionLoader)
    except yaml.YAMLError:
        return _read(text, DefinitionLoader)


def _read(text: str, loader_class: type[Any]) -> tuple[Any, yaml.Node | None]:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    finally:
        loader.dispose()


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line where the value at ``loc`` (or its nearest existing parent) starts."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == part), None)
            if match is None:
                key = next((k for k, _ in node.value if k.value == part), None)
                return key.start_mark.line + 1 if key is not None else line
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return line
        line = node.start_mark.line + 1
    return line
