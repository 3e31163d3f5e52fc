"""Templates checked when a definition is read, not when a deploy renders them at 3 a.m.: Jinja syntax, the names
a template may use (README, "Template variables"), ``vars.NAME`` defined in every environment the string is
rendered in, ``params.NAME`` declared, and variable or parameter names that a dict method would shadow
(``{{ vars.values }}`` renders the method, not the value)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import nodes

from release_mgmt.definition.models import ReleaseDefinition
from release_mgmt.errors import Problem
from release_mgmt.steps import shell

#: what a step's shell string may name (steps/shell.py): the release's own names and the quoted run values
SHELL_NAMES = frozenset(
    ("release", "environment", "component", "version", "previous_version", "vars", "task_id", "params", "run_id")
)
#: what every other templated string may name besides: Airflow's task context (airflow.sdk Context keys,
#: tests/definition/test_templates.py keeps the list true)
AIRFLOW_CONTEXT = frozenset(
    (
        "asset_state_store", "conn", "dag", "dag_run", "data_interval_end", "data_interval_start", "ds",
        "ds_nodash", "exception", "expanded_ti_count", "inlet_events", "inlets", "logical_date", "macros",
        "map_index_template", "outlet_events", "outlets", "params", "partition_date", "partition_key",
        "prev_data_interval_end_success", "prev_data_interval_start_success", "prev_end_date_success",
        "prev_start_date_success", "reason", "run_id", "task", "task_instance", "task_instance_key_str",
        "task_reschedule_count", "task_state_store", "templates_dict", "test_mode", "ti",
        "triggering_asset_events", "try_number", "ts", "ts_nodash", "ts_nodash_with_tz", "var",
    )
)  # fmt: skip
#: names a dict answers with a method: a variable or parameter named so is unreachable as ``vars.NAME``
DICT_METHODS = frozenset(n for n in dir(dict) if not n.startswith("_"))
BUILT_IN_PARAMETERS = ("environments", "dry_run", "emergency_change")

#: the filters Airflow adds to Jinja's (airflow.sdk's templater FILTERS; the test keeps the list true)
AIRFLOW_FILTERS = ("ds", "ds_nodash", "ts", "ts_nodash", "ts_nodash_with_tz")

_ENV = jinja2.Environment(autoescape=False)  # noqa: S701 - parsed only, never rendered here
_ENV.filters.update(dict.fromkeys(AIRFLOW_FILTERS, str))
#: names Jinja sets inside loops, macros and call blocks
_LOOP_NAMES = frozenset(("loop", "caller", "varargs", "kwargs"))


def template_problems(defn: ReleaseDefinition) -> list[Problem]:
    """Every templated string's problems, then the shadowing names."""
    problems = _shadowing(defn)
    globals_ = set(_ENV.globals)
    parameters = {*defn.parameters, *BUILT_IN_PARAMETERS, *(f"version_{c.name}" for c in defn.components)}
    for where, text, in_shell in _templated(defn):
        if "{" not in text:
            continue
        found = _analysis(text)
        problems += [Problem(where, message) for message in found.problems]
        if found.problems and found.names is None:
            continue
        undeclared = found.names or set()
        allowed = SHELL_NAMES if in_shell else SHELL_NAMES | AIRFLOW_CONTEXT
        for name in sorted(undeclared - allowed - globals_):
            note = " (shell strings never see Airflow's context)" if in_shell and name in AIRFLOW_CONTEXT else ""
            close = difflib.get_close_matches(name, sorted(allowed), n=1)
            hint = f" (did you mean {close[0]}?)" if close and not note else note
            problems.append(Problem(where, f"unknown template name {_short(name)}{hint}; known: {_known(in_shell)}"))
        for attr in sorted(found.attributes.get("vars", ())):
            missing = [e.name for e in defn.environments if attr not in e.variables]
            if missing:
                problems.append(
                    Problem(
                        where,
                        f"vars.{attr} is not defined in environment(s) {', '.join(missing)}; add it to their variables",
                    )
                )
        for attr in sorted(set(found.attributes.get("params", ())) - parameters):
            problems.append(
                Problem(where, f"params.{attr} is not a parameter of this release; declare it in parameters")
            )
    return problems


@dataclass(frozen=True)
class _Analysis:
    """What one template says: its problems (names None when it could not be read), the names it reads without
    setting them, and the attributes it reads of vars and params."""

    problems: tuple[str, ...]
    names: set[str] | None
    attributes: dict[str, tuple[str, ...]]


#: a plain ``{{ name }}`` or ``{{ name.attr }}``: most templates are only these, read without Jinja's parser
_PLAIN = re.compile(r"\{\{\s*([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)*)\s*\}\}")


def _analysis(text: str) -> _Analysis:
    if "{%" not in text and "{#" not in text:
        rest = _PLAIN.sub("", text)
        if "{{" not in rest and "}}" not in rest:
            matches = _PLAIN.findall(text)
            attributes: dict[str, tuple[str, ...]] = {}
            for name, path in matches:
                if path and name in ("vars", "params"):
                    attributes[name] = (*attributes.get(name, ()), path.split(".")[1])
            return _Analysis((), {name for name, _ in matches}, attributes)
    try:
        tree = _ENV.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        return _Analysis((f"template syntax error on its line {exc.lineno}: {_short(exc.message or '')}",), None, {})
    problems = _unknown_filters(tree)
    if any(True for _ in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends))):
        problems.append("a template may not include, import or extend other templates")
    attributes = {name: tuple(_attributes(tree, name)) for name in ("vars", "params")}
    return _Analysis(tuple(problems), _undeclared(tree), attributes)


def _undeclared(tree: nodes.Template) -> set[str]:
    """The names a template reads without setting them itself (a walk of the parsed tree: compiling it, as
    ``jinja2.meta`` does, would cost more than building the release's DAG)."""
    names = list(tree.find_all(nodes.Name))
    stored = {n.name for n in names if n.ctx in ("store", "param")}
    return {n.name for n in names if n.ctx == "load"} - stored - _LOOP_NAMES


def _unknown_filters(tree: nodes.Template) -> list[str]:
    """What compiling the template would refuse: filters and tests that do not exist."""
    found = [f"no filter named {_short(n.name)}" for n in tree.find_all(nodes.Filter) if n.name not in _ENV.filters]
    found += [f"no test named {_short(n.name)}" for n in tree.find_all(nodes.Test) if n.name not in _ENV.tests]
    return [f"template error: {message}" for message in found]


def _known(in_shell: bool) -> str:
    return ", ".join(sorted(SHELL_NAMES)) + ("" if in_shell else " and Airflow's context (ds, ti, dag_run, ...)")


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _attributes(tree: nodes.Template, name: str) -> set[str]:
    """``X`` of every ``name.X`` and ``name['X']`` in a template."""
    found: set[str] = set()
    # vars.get('x'), vars.x is defined: the template asks, it does not assume
    asking = {
        id(n.node)  # type: ignore[attr-defined]
        for n in tree.find_all((nodes.Call, nodes.Test))
        if not isinstance(n, nodes.Test) or n.name in ("defined", "undefined")
    }
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node  # type: ignore[attr-defined]
        if id(node) in asking or not (isinstance(target, nodes.Name) and target.name == name):
            continue
        if isinstance(node, nodes.Getattr):
            found.add(node.attr)
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found.add(node.arg.value)
    return found


def _shadowing(defn: ReleaseDefinition) -> list[Problem]:
    problems = [
        Problem(f"environments[{i}].variables.{key}", _shadow_message("vars", key))
        for i, env in enumerate(defn.environments)
        for key in env.variables
        if key in DICT_METHODS
    ]
    problems += [
        Problem(f"parameters.{key}", _shadow_message("params", key)) for key in defn.parameters if key in DICT_METHODS
    ]
    return problems


def _shadow_message(holder: str, key: str) -> str:
    return (
        f"{key!r} is the name of a dict method: {{{{ {holder}.{key} }}}} would render the method; choose another name"
    )


def _templated(defn: ReleaseDefinition) -> Iterator[tuple[str, str, bool]]:
    """(key path, text, whether a shell runs it) of every string a task renders with Jinja."""
    for i, comp in enumerate(defn.components):
        for key in ("current_version", "deploy", "rollback", "undeploy"):
            step = getattr(comp, key)
            if step is not None:
                yield from _step_strings(f"components[{i}].{key}", step.model_dump(by_alias=True))
        for j, step in enumerate(comp.validation):
            yield from _step_strings(f"components[{i}].validate[{j}]", step.model_dump(by_alias=True))
    for i, env in enumerate(defn.environments):
        for j, gate in enumerate(env.gates):
            for key in ("subject", "instructions"):
                value = getattr(gate, key, None)
                if isinstance(value, str):
                    yield f"environments[{i}].gates[{j}].{key}", value, False


def _step_strings(where: str, step: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    shell_keys = shell.SHELL_KEYS.get(str(step.get("type")), ())
    stack: list[tuple[str, Any, bool]] = [(f"{where}.{k}", v, k in shell_keys) for k, v in step.items()]
    while stack:
        path, value, in_shell = stack.pop()
        if isinstance(value, str):
            yield path, value, in_shell
        elif isinstance(value, dict):
            stack.extend((f"{path}.{k}", v, in_shell) for k, v in value.items())
        elif isinstance(value, list | tuple):
            stack.extend((f"{path}[{n}]", v, in_shell) for n, v in enumerate(value))
