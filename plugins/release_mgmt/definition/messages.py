"""Pydantic validation errors turned into one sentence per problem, with the key path."""

from __future__ import annotations

import difflib
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from release_mgmt.definition.models import PATTERN_RULES, ReleaseDefinition
from release_mgmt.errors import Problem
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
    return f"{value!r}"


def _models_at(loc: tuple[Any, ...]) -> list[type[BaseModel]]:
    """The model classes that may stand at ``loc`` in a definition (several for a step union)."""
    current: list[Any] = [ReleaseDefinition]
    for part in loc:
        nxt: list[Any] = []
        for tp in current:
            if isinstance(part, int) or part == "[key]":
                nxt.extend(a for a in get_args(tp) if a is not Ellipsis)
            elif isinstance(tp, type) and issubclass(tp, BaseModel):
                field = next(
                    (f for n, f in tp.model_fields.items() if (f.alias or n) == part), None
                )
                if field is not None:
                    nxt.append(field.annotation)
            elif get_origin(tp) is dict:
                nxt.append(get_args(tp)[1])
        current = []
        for tp in nxt:  # unwrap Optional/Union/Annotated
            args = get_args(tp)
            if get_origin(tp) is not None and get_origin(tp) not in (tuple, dict, list):
                current.extend(args)
            else:
                current.append(tp)
    return [m for m in current if isinstance(m, type) and issubclass(m, BaseModel)]


def _allowed_keys(parent: tuple[Any, ...], given: dict | None) -> list[str]:
    models = _models_at(parent)
    step_type = given.get("type") if isinstance(given, dict) else None
    if step_type and any(m in STEP_TYPES for m in models):
        models = [m for m in models if m.model_fields["type"].annotation.__args__ == (step_type,)]  # type: ignore[union-attr]
    keys: list[str] = []
    for model in models:
        keys.extend(f.alias or n for n, f in model.model_fields.items() if (f.alias or n) not in keys)
    return keys


def _unknown_key(loc: tuple[Any, ...], data: Any) -> str:
    parent = _value_at(data, loc[:-1])
    allowed = _allowed_keys(loc[:-1], parent)
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


def _sentence(err: dict[str, Any], data: Any) -> str:  # noqa: PLR0911 - one return per error kind
    kind, loc, ctx, value = err["type"], err["loc"], err.get("ctx") or {}, err.get("input")
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return _unknown_key(loc, data)
    if kind == "string_pattern_mismatch":
        rule = PATTERN_RULES.get(ctx.get("pattern"), f"match {ctx.get('pattern')}")
        return f"must be {rule} (got {value!r})"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"must be a mapping of keys to values (got {_type_name(value)})"
    if kind in ("tuple_type", "list_type"):
        return f"must be a list (got {_type_name(value)})"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_type":
        return f"must be a string (got {_type_name(value)})"
    if kind == "literal_error" and loc and loc[-1] == "type" and _models_at(loc[:-1])[:1] and all(
        m in STEP_TYPES for m in _models_at(loc[:-1])
    ):
        return f"unknown step type {value!r}; expected one of: {', '.join(step_type_names())}"
    if kind == "union_tag_invalid":
        return f"unknown step type {ctx.get('tag')!r}; expected one of: {', '.join(step_type_names())}"
    if kind == "union_tag_not_found":
        return f"required key 'type' is missing; expected one of: {', '.join(step_type_names())}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')} (got {value!r})"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{msg[0].lower()}{msg[1:]} (got {_type_name(value)})"


def _is_noise(err: dict[str, Any], errors: list[dict[str, Any]]) -> bool:
    """Errors pydantic adds on top of a real one: a list 'too short' because its items failed,
    or the keys of a step whose type is unknown."""
    loc = err["loc"]
    if err["type"] == "too_short":
        return any(e is not err and e["loc"][: len(loc)] == loc for e in errors)
    bad_type_steps = [
        e["loc"][:-1]
        for e in errors
        if e["type"] == "literal_error" and e["loc"] and e["loc"][-1] == "type"
    ]
    return any(loc[: len(p)] == p and loc != (*p, "type") for p in bad_type_steps)


def problems_from(exc: ValidationError, data: Any) -> list[Problem]:
    """Every validation error of one file as a :class:`Problem`, noise removed."""
    errors = exc.errors()
    problems = []
    for err in errors:
        if _is_noise(err, errors):
            continue
        loc = tuple(err["loc"])
        if loc and loc[-1] == "[key]":
            problems.append(Problem(key_path(loc[:-2]), f"key {loc[-2]!r}: {_sentence(err, data)}"))
        else:
            problems.append(Problem(key_path(loc), _sentence(err, data)))
    return problems
