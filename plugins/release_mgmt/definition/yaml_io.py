"""Safe YAML for definitions: duplicate keys rejected, numbers and dates kept as strings.

Versions such as ``1.10`` must not become the float ``1.1``, and ``on``/``yes`` must not become
booleans: only ``true``/``false`` and ``null`` are typed; every other scalar stays a string and
the pydantic models convert the few that are numbers. An ``http`` step's ``json:`` body is the exception: it
is sent as JSON, so its unquoted numbers, true/false and null keep their JSON types (quoted values stay text).

Limits are checked on the node tree, before anything is built from it (docs: README, "Limits"): nesting depth,
the size a document reaches once its aliases are expanded, the length of one value, and aliases that refer to
themselves. YAML merge keys (``<<: *base``) are supported; keys written beside them override the merged ones.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import yaml

from release_mgmt.errors import Problem, quoted


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


#: the largest definition file read (a real one is a few KB; the limit keeps one file from eating a shard's
#: import timeout)
MAX_BYTES = 1_000_000
#: nesting levels a definition may use (a real one uses under 10; a json body a few more)
MAX_DEPTH = 32
#: nodes plus characters of the document once every alias is expanded (a 1 MB file without aliases stays below)
MAX_EXPANDED = 2_000_000
#: characters of one value (a long inline script fits; a pasted file does not)
MAX_STRING = 20_000
MERGE_TAG = "tag:yaml.org,2002:merge"


class LimitError(Exception):
    """A document over one of the limits above, at ``line``."""

    def __init__(self, message: str, line: int | None) -> None:
        self.line = line
        super().__init__(message)


def _construct_mapping(loader: DefinitionLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, dict | list):
            raise yaml.constructor.ConstructorError(
                None,
                None,
                "a key cannot be a mapping or a list; a value that starts with {{ must be quoted, "
                'e.g. equals: "{{ version }}"',
                key_node.start_mark,
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {quoted(key)} (first at line {seen[key].start_mark.line + 1}); remove one of them",
                key_node.start_mark,
            )
        seen[key] = key_node
    loader.flatten_mapping(node)  # merge keys: the merged keys first, the written ones override them
    data = yaml.SafeLoader.construct_mapping(loader, node, deep=deep)
    for key_node, value_node in node.value:
        if key_node.value == "json" and isinstance(value_node, yaml.MappingNode | yaml.SequenceNode):
            data["json"] = json_value(value_node)
    return data


_JSON_INT = re.compile(r"^-?(?:0|[1-9][0-9]*)$")
_JSON_FLOAT = re.compile(r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?$")


def json_value(node: yaml.Node) -> Any:
    """A node as JSON: unquoted numbers, true/false and null typed as JSON reads them; quoted values text."""
    if isinstance(node, yaml.MappingNode):
        return {str(key.value): json_value(value) for key, value in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [json_value(item) for item in node.value]
    text = str(node.value)
    if getattr(node, "style", None):  # quoted or block scalar: text (plain is None, or "" from libyaml)
        return text
    return _JSON_WORDS.get(text, _json_number(text))


_JSON_WORDS: dict[str, Any] = {"null": None, "~": None, "": None, "true": True, "false": False}


def _json_number(text: str) -> Any:
    if _JSON_INT.match(text) and len(text) <= 19:
        return int(text)
    if _JSON_FLOAT.match(text) and len(text) <= 40:
        return float(text)
    return text


DefinitionLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class FastDefinitionLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The same dialect on libyaml's parser (when PyYAML has it): several times faster to read."""


FastDefinitionLoader.yaml_implicit_resolvers = DefinitionLoader.yaml_implicit_resolvers
FastDefinitionLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse(text: str) -> tuple[Any, yaml.Node | None]:
    """The data and the node tree (for line numbers) of one YAML document, read once: the data is constructed
    from the node tree once it passed the limits. A document libyaml refuses is read again by the pure-Python
    parser, whose messages the error reports (and their golden tests) use. Raises yaml.YAMLError or
    :class:`LimitError`."""
    try:
        return _read(text, FastDefinitionLoader)
    except yaml.YAMLError:
        try:
            return _read(text, DefinitionLoader)
        except RecursionError:
            raise LimitError(f"nested more than {MAX_DEPTH} levels deep; flatten the structure", None) from None


def _read(text: str, loader_class: type[Any]) -> tuple[Any, yaml.Node | None]:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        check_limits(node)
        return loader.construct_document(node), node
    finally:
        loader.dispose()


def check_limits(root: yaml.Node) -> None:
    """Depth, expanded size, value length and self-referring aliases, without recursion and before any
    value is built (a 1,000-deep document or a billion-laughs alias bomb costs only this walk). A document
    without aliases (most) is walked once, top down: its size is its text's, so only depth and value length
    can be over; one with aliases gets the full walk."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    while stack:
        node, level = stack.pop()
        if id(node) in seen:  # reached twice: an alias
            _check_aliased(root)
            return
        seen.add(id(node))
        if level > MAX_DEPTH:
            raise LimitError(
                f"nested more than {MAX_DEPTH} levels deep; flatten the structure", node.start_mark.line + 1
            )
        if isinstance(node, yaml.ScalarNode):
            if len(node.value) > MAX_STRING:
                raise _too_long(node)
        elif isinstance(node, yaml.MappingNode):
            stack.extend((part, level + 1) for pair in node.value for part in pair)
        else:
            stack.extend((item, level + 1) for item in node.value)


def _too_long(node: yaml.Node) -> LimitError:
    return LimitError(
        f"a value of {len(node.value):,} characters; at most {MAX_STRING:,}: move long text into a script or file the "
        "step runs",
        node.start_mark.line + 1,
    )


def _check_aliased(root: yaml.Node) -> None:
    """The full walk: each node's expanded size and height, bottom up, every shared node once."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        children = _children(node)
        if not leaving:
            if key in size:
                continue
            if isinstance(node, yaml.ScalarNode) and len(node.value) > MAX_STRING:
                raise _too_long(node)
            open_nodes.add(key)
            stack.append((node, True))
            for child in children:
                if id(child) in open_nodes:
                    raise LimitError(
                        "an alias refers to the anchor it is part of; remove it", child.start_mark.line + 1
                    )
                if id(child) not in size:
                    stack.append((child, False))
            continue
        open_nodes.discard(key)
        size[key] = 1 + (len(node.value) if isinstance(node, yaml.ScalarNode) else 0)
        size[key] += sum(size[id(c)] for c in children)
        depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
        if depth[key] > MAX_DEPTH:
            raise LimitError(
                f"nested more than {MAX_DEPTH} levels deep; flatten the structure", node.start_mark.line + 1
            )
        if size[key] > MAX_EXPANDED:
            raise LimitError(
                f"this part grows past {MAX_EXPANDED:,} values and characters once its aliases (*name) are expanded; "
                "repeat less through aliases",
                node.start_mark.line + 1,
            )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


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


def display_path(path: Path, root: Path | None = None) -> str:
    """``path`` relative to ``root`` (or the working directory) when inside it, else absolute."""
    base = (root or Path.cwd()).resolve()
    resolved = path.resolve()
    return str(resolved.relative_to(base)) if resolved.is_relative_to(base) else str(resolved)


def read_small(path: Path) -> str:
    """The text of a definition, calendar or groups file: a regular file of at most MAX_BYTES, UTF-8 (ValueError
    saying which rule it breaks; nothing is read from a device, a pipe or a huge file)."""
    try:
        info = path.stat()
    except OSError as exc:
        raise ValueError(f"cannot read {path.name}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError("not a regular file (a folder, a device or a pipe); name a YAML file")
    if info.st_size > MAX_BYTES:
        raise ValueError(
            f"the file is {info.st_size / 1_000_000:.1f} MB; a definition is at most {MAX_BYTES // 1_000_000} MB: "
            "split it into several releases, or move shared windows into include/calendars and groups into a "
            "shared file"
        )
    try:
        with path.open("rb") as handle:
            return handle.read(MAX_BYTES + 1).decode("utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {path.name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"the file is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def problem(exc: yaml.YAMLError | LimitError, text: str) -> Problem:
    """What is wrong with a file's YAML, at its line."""
    if isinstance(exc, LimitError):
        return Problem("", str(exc), line=exc.line)
    if isinstance(exc, yaml.reader.ReaderError):
        line = text[: exc.position].count("\n") + 1
        return Problem("", f"the control character U+{exc.character:04X} is not allowed in YAML; remove it", line=line)
    if not isinstance(exc, yaml.MarkedYAMLError):
        return Problem("", f"invalid YAML: {' '.join(str(exc).split())[:200]}")
    mark = exc.problem_mark or exc.context_mark
    text = str(exc.problem or "")
    if exc.context and exc.context_mark is not None:
        text += f" ({exc.context} at line {exc.context_mark.line + 1})"
    if "but got '{'" in text:
        text += "; a Jinja {{ }} inside a flow mapping {...} needs quotes, or write the mapping in block style"
    column = f"column {mark.column + 1}: " if mark else ""
    return Problem("", f"{column}invalid YAML: {text}", line=mark.line + 1 if mark else None)
