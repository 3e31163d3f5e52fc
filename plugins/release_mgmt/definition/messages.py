"""Pydantic validation errors turned into one sentence per problem, with the key path."""

from __future__ import annotations

import difflib
import re
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from release_mgmt.definition.models import PATTERN_RULES, ReleaseDefinition
from release_mgmt.errors import Problem, quoted
from release_mgmt.gates import GATE_TYPES, gate_type_names
from release_mgmt.sources import source_type_names
from release_mgmt.steps import STEP_TYPES, step_type_names


def key_path(loc: tuple[Any, ...]) -> str:
    """``('components', 0, 'deploy')`` -> ``components[0].deploy``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    return quoted(value)


def _models_at(loc: tuple[Any, ...], root: type[BaseModel] = ReleaseDefinition) -> list[type[BaseModel]]:
    """The model classes that may stand at ``loc`` in a file of ``root`` (several for a step union)."""
    current: list[Any] = [root]
    for part in loc:
        nxt: list[Any] = []
        for tp in current:
            if isinstance(part, int) or part == "[key]":
                nxt.extend(a for a in get_args(tp) if a is not Ellipsis)
            elif isinstance(tp, type) and issubclass(tp, BaseModel):
                field = next((f for n, f in tp.model_fields.items() if (f.alias or n) == part), None)
                if field is not None:
                    nxt.append(field.annotation)
            elif get_origin(tp) is dict:
                nxt.append(get_args(tp)[1])
        current = [flat for tp in nxt for flat in _flatten(tp)]
    return [m for m in current if isinstance(m, type) and issubclass(m, BaseModel)]


def _flatten(tp: Any) -> list[Any]:
    """Unwrap Optional, Union and Annotated (at any depth) down to the types inside."""
    if get_origin(tp) is None or get_origin(tp) in (tuple, dict, list):
        return [tp]
    return [flat for arg in get_args(tp) for flat in _flatten(arg)]


def _allowed_keys(
    parent: tuple[Any, ...], given: dict[str, Any] | None, root: type[BaseModel] = ReleaseDefinition
) -> list[str]:
    models = _models_at(parent, root)
    step_type = given.get("type") if isinstance(given, dict) else None
    if step_type and any(m in STEP_TYPES for m in models):
        models = [m for m in models if m.model_fields["type"].annotation.__args__ == (step_type,)]  # type: ignore[union-attr]
    keys: list[str] = []
    for model in models:
        keys.extend(f.alias or n for n, f in model.model_fields.items() if (f.alias or n) not in keys)
    return keys


def _unknown_key(loc: tuple[Any, ...], data: Any, root: type[BaseModel] = ReleaseDefinition) -> str:
    parent = _value_at(data, loc[:-1])
    allowed = _allowed_keys(loc[:-1], parent, root)
    msg = "unknown key"
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    if close:
        msg += f" (did you mean '{close[0]}'?)"
    if allowed:
        msg += f"; allowed keys: {', '.join(allowed)}"
    return msg


def _value_at(data: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _is_gate(loc: tuple[Any, ...]) -> bool:
    models = _models_at(loc)
    return bool(models) and all(m in GATE_TYPES for m in models)


def _is_step(loc: tuple[Any, ...]) -> bool:
    models = _models_at(loc)
    return bool(models) and all(m in STEP_TYPES for m in models)


#: problems reported per file (a file with thousands of wrong keys gets the first ones, quickly)
MAX_PROBLEMS = 50

#: error kind -> sentence template; ``{got}`` is the offending value, other names come from pydantic's ctx
TEMPLATES = {
    "bool_parsing": "must be true or false (got {got})",
    "bool_type": "must be true or false (got {got})",
    "int_parsing": "must be a whole number (got {got})",
    "int_type": "must be a whole number (got {got})",
    "greater_than": "must be greater than {gt} (got {got})",
    "greater_than_equal": "must be at least {ge} (got {got})",
    "less_than_equal": "must be at most {le} (got {got})",
    "less_than": "must be less than {lt} (got {got})",
    "missing": "required key is missing",
    "model_type": "must be a mapping of keys to values (got {got})",
    "dict_type": "must be a mapping of keys to values (got {got})",
    "model_attributes_type": "must be a mapping of keys to values (got {got})",
    "tuple_type": "must be a list (got {got})",
    "list_type": "must be a list (got {got})",
    "too_short": "must have at least {min_length} item(s)",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters (got {got})",
    "too_long": "must have at most {max_length} item(s)",
    "finite_number": "must be a finite number (got {got})",
    "string_type": "must be a string (got {got})",
    "literal_error": "must be one of {expected} (got {got})",
    "value_error": "{error}",
    "union_types": "{kinds_text} (got {got})",
    "union_tag_invalid": "unknown step type {tag}; expected one of: {step_types}",
    "union_tag_not_found": "required key is missing; expected one of: {step_types}",
}
#: error kinds that read differently on a step's ``type`` key
STEP_TYPE_TEMPLATES = {
    "missing": "required key is missing; expected one of: {step_types}",
    "literal_error": "unknown step type {value}; expected one of: {step_types}",
}


def _sentence(err: dict[str, Any], data: Any, root: type[BaseModel] = ReleaseDefinition) -> str:
    kind, loc, value = err["type"], err["loc"], err.get("input")
    if kind == "extra_forbidden":
        return _unknown_key(loc, data, root)
    if kind == "string_pattern_mismatch":
        pattern = str((err.get("ctx") or {}).get("pattern"))
        rule = PATTERN_RULES.get(pattern, "written in the form the documentation shows for this key")
        return f"must be {rule} (got {quoted(value)})"
    names = {
        **(err.get("ctx") or {}),
        "kinds_text": err["msg"],
        "got": _type_name(value),
        "value": quoted(value) if isinstance(value, str) else value,
        "step_types": ", ".join(step_type_names()),
    }
    tagged = _type_sentence(kind, tuple(loc), names, value)
    if tagged:
        return tagged
    if kind == "union_tag_invalid":
        names["tag"] = quoted(str(names.get("tag", "")))
    if kind in TEMPLATES:
        return TEMPLATES[kind].format(**names)
    msg = err["msg"]
    return f"{msg[0].lower()}{msg[1:]} (got {names['got']})"


def _type_sentence(kind: str, loc: tuple[Any, ...], names: dict[str, Any], value: Any) -> str:
    """The sentence for a missing or unknown ``type`` of a step, a gate or a version source ("" for others)."""
    if loc[-2:] == ("source", "type") and kind in (*STEP_TYPE_TEMPLATES, "union_tag_invalid", "union_tag_not_found"):
        source_types = ", ".join(source_type_names())
        if kind in ("missing", "union_tag_not_found"):
            return f"required key is missing; expected one of: {source_types}"
        return f"unknown source type {quoted(str(names.get('tag', value)))}; expected one of: {source_types}"
    if kind in STEP_TYPE_TEMPLATES and loc[-1:] == ("type",) and _is_step(loc[:-1]):
        return STEP_TYPE_TEMPLATES[kind].format(**names)
    if kind == "literal_error" and loc[-1:] == ("type",) and _is_gate(loc[:-1]):
        return f"unknown gate type {quoted(value)}; expected one of: {', '.join(gate_type_names())}"
    return ""


def _is_noise(err: dict[str, Any], errors: list[dict[str, Any]]) -> bool:
    """Errors pydantic adds on top of a real one: a list 'too short' because its items failed,
    or the keys of a step whose type is unknown."""
    loc = err["loc"]
    if err["type"] == "too_short":
        return any(e is not err and e["loc"][: len(loc)] == loc for e in errors)
    bad_type_steps = [
        e["loc"][:-1] for e in errors if e["type"] == "literal_error" and e["loc"] and e["loc"][-1] == "type"
    ]
    return any(loc[: len(p)] == p and loc != (*p, "type") for p in bad_type_steps)


def _without_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The key path as written: pydantic puts a step union's tag (``command``) into the location."""
    tags, sources = set(step_type_names()), set(source_type_names())
    cleaned: tuple[Any, ...] = ()
    after_tag = False
    for part in loc:
        if not after_tag and part in sources and cleaned[-1:] == ("source",):
            after_tag = True  # a version source's tag (git, oci, ...)
            continue
        if not after_tag and part in tags and _is_step(cleaned):
            after_tag = True  # the next part is a key of that step, even when it is named like a tag
            continue
        cleaned, after_tag = (*cleaned, part), False
    return cleaned


def calendar_problems(exc: ValidationError, data: Any) -> list[Problem]:
    """Validation errors of a shared calendar file (no allowed-key hints: a different root model)."""
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        msg = str((err.get("ctx") or {}).get("error", "")) or err["msg"]
        problems.append(Problem(key_path(loc), f"{msg[0].lower()}{msg[1:]}" if msg else "invalid"))
    return problems


#: what pydantic puts into a location for each member of a plain union (``json: dict | list``), and what each
#: member's type error means
_UNION_LABEL = re.compile(r"^(?:str|int|float|bool|none|any|(?:dict|list|tuple|set)\[.*\]|function-\w+\[.*\])$")
_KINDS = {
    "dict_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
    "string_type": "text",
    "bool_type": "true or false",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "none_required": "null",
}


def _one_per_union(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Errors with union member labels taken out of their location; the members' type errors at one key become
    one ("must be a mapping or a list")."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for e in errors:
        loc = tuple(e["loc"])
        labels = [p for p in loc if isinstance(p, str) and _UNION_LABEL.match(p)]
        if not labels:
            out.append(e)
            continue
        clean = tuple(p for p in loc if not (isinstance(p, str) and _UNION_LABEL.match(p)))
        first = merged.get(clean)
        if first is None:
            first = merged[clean] = {**e, "loc": clean, "kinds": []}
            out.append(first)
        if e["type"] in _KINDS and _KINDS[e["type"]] not in first["kinds"]:
            first["kinds"].append(_KINDS[e["type"]])
    for e in merged.values():
        if len(e["kinds"]) > 1:
            e["type"], e["msg"] = "union_types", f"must be {' or '.join(e['kinds'])}"
    return out


def problems_from(exc: ValidationError, data: Any, root: type[BaseModel] = ReleaseDefinition) -> list[Problem]:
    """Every validation error of one file as a :class:`Problem`, noise removed."""
    errors: list[dict[str, Any]] = []
    every = exc.errors(include_url=False, include_context=True, include_input=True)
    for e in _one_per_union([dict(e) for e in every[:MAX_PROBLEMS]]):
        loc = _without_tags(tuple(e["loc"]))
        if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, "type")  # the problem is the step's type key, where the user must look
        errors.append({**e, "loc": loc})
    problems = []
    if len(every) > MAX_PROBLEMS:
        problems.append(Problem("", f"{len(every) - MAX_PROBLEMS:,} more problems not shown; fix these first"))
    for err in errors:
        if _is_noise(err, errors):
            continue
        loc = tuple(err["loc"])
        if loc and loc[-1] == "[key]":
            problems.append(Problem(key_path(loc[:-2]), f"key {quoted(str(loc[-2]))}: {_sentence(err, data, root)}"))
        else:
            problems.append(Problem(key_path(loc), _sentence(err, data, root)))
    return problems
