"""Shell strings without injection: trigger parameters reach ``command`` and ``ssh`` steps only as
environment variables.

Every run parameter is passed to the step's process as ``RELEASE_PARAM_<NAME>`` (byte for byte).
In a shell string (``command`` of a command or ssh step, and a command step's ``cwd``),
``{{ params.NAME }}`` renders as ``"${RELEASE_PARAM_NAME}"``: a quoted reference the shell expands
without reading it again, so ``$(...)``, backticks, ``;``, quotes, globs and newlines in the value stay
data. Comparisons and tests (``{% if params.dry %}``, ``params.env == "prod"``) still see the value.
The run id (which whoever triggers may choose) is treated the same: ``{{ run_id }}`` renders as
``"${RELEASE_RUN_ID}"``. Nothing else from outside the definition (``dag_run``, ``conf``, ``ti`` ...) is
available in a shell string: only the release's names, the task id, the validated version, the author's
``vars``, ``params`` and ``run_id``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from release_mgmt.errors import ParameterError

#: step types whose keys are run by a shell, and those keys
SHELL_KEYS = {"command": ("command", "cwd"), "ssh": ("command", "stop_command")}
PARAM_ENV_PREFIX = "RELEASE_PARAM_"
#: ``{{ ... params.NAME ... }}`` or ``params["NAME"]`` inside an expression
_EXPRESSION = re.compile(r"\{\{(?P<body>.*?)\}\}", re.DOTALL)
_PARAM = re.compile(r"""params(?:\.(?P<dot>[A-Za-z_]\w*)|\[\s*['"](?P<key>[A-Za-z_]\w*)['"]\s*\])""")
_BLOCK = re.compile(r"\{%.*?%\}|\{#.*?#\}", re.DOTALL)


def env_name(name: str) -> str:
    return PARAM_ENV_PREFIX + name.upper()


def env_value(value: Any) -> str:
    """A parameter as its environment variable holds it: text as is, booleans true/false, lists as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, sort_keys=True)
    return str(value)


def param_env(params: Mapping[str, Any]) -> dict[str, str]:
    """``RELEASE_PARAM_<NAME>`` for every run parameter; a NUL byte (which no environment can hold) is refused."""
    env = {}
    for name in sorted(params):
        value = env_value(params[name])
        if "\x00" in value:
            raise ParameterError(f"parameter {name} contains a NUL byte; remove it and trigger again")
        env[env_name(name)] = value
    return env


RUN_ID_ENV = "RELEASE_RUN_ID"


class ShellParam:
    """A value from outside the definition as a shell string sees it: renders as a quoted reference to the
    variable ``env`` that holds it (``RELEASE_PARAM_<NAME>`` for parameter ``name``); tests and comparisons
    use the value."""

    def __init__(self, name: str, value: Any, env: str = "") -> None:
        self.name = name
        self.value = value
        self.env = env or env_name(name)

    def __str__(self) -> str:
        return f'"${{{self.env}}}"'

    def __bool__(self) -> bool:
        return bool(self.value)

    def __eq__(self, other: object) -> bool:
        return bool(self.value == (other.value if isinstance(other, ShellParam) else other))

    def __hash__(self) -> int:
        return hash(self.env)

    def __iter__(self) -> Any:  # {% for e in params.environments %} iterates the value
        return iter(self.value)

    def __contains__(self, item: object) -> bool:
        return item in self.value


def render(template: str, jinja_env: Any, names: Mapping[str, Any], params: Mapping[str, Any], run_id: str = "") -> str:
    """``template`` rendered with ``names`` (release, environment, component, task_id, version,
    previous_version, vars), and ``params`` and ``run_id`` as :class:`ShellParam` references."""
    shell_params = {name: ShellParam(name, value) for name, value in params.items()}
    run = ShellParam("run_id", run_id, RUN_ID_ENV)
    return str(jinja_env.from_string(template).render(**names, params=shell_params, run_id=run))


def embedded_params(template: str) -> list[tuple[str, str]]:
    """(parameter name, quote it sits in: ``'``, ``"`` or ``""``) for every ``{{ ... params.X ... }}`` of
    a shell string, in order; the quote state is read from the literal text around the expressions."""
    found = []
    quote = ""
    position = 0
    text = _BLOCK.sub(lambda m: " " * len(m.group()), template)
    for match in _EXPRESSION.finditer(text):
        quote = _quote_after(text[position : match.start()], quote)
        position = match.end()
        for param in _PARAM.finditer(match["body"]):
            found.append((param["dot"] or param["key"], quote))
    return found


def _quote_after(literal: str, quote: str) -> str:
    """The open quote after ``literal`` when ``quote`` was open before it (bash rules, simplified)."""
    escaped = False
    for char in literal:
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote and char == quote:
            quote = ""
        elif not quote and char in "'\"":
            quote = char
    return quote


def problems(step: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(errors, warnings) as (key, message) for one step's shell strings."""
    errors: list[tuple[str, str]] = []
    warnings: list[tuple[str, str]] = []
    for key in SHELL_KEYS.get(str(step.get("type")), ()):
        value = step.get(key)
        if not isinstance(value, str):
            continue
        for name, quote in embedded_params(value):
            ref = str(ShellParam(name, None))
            if quote:
                errors.append(
                    (
                        key,
                        f"{{{{ params.{name} }}}} sits inside {quote}...{quote}: a trigger parameter is passed as "
                        f"the environment variable {env_name(name)} and renders as {ref} already; remove the quotes "
                        "around it",
                    )
                )
            else:
                warnings.append(
                    (
                        key,
                        f"embeds trigger parameter {name!r}: it reaches the shell as {ref} (never as raw text); "
                        f"writing {ref} yourself says so",
                    )
                )
    return errors, warnings
