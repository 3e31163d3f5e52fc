"""Shell strings and trigger parameters (steps/shell.py): where a parameter sits, and what validate says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from release_mgmt.errors import ParameterError
from release_mgmt.steps import shell
from tests.helpers import command, minimal_definition, write_definition


@pytest.mark.parametrize(
    ("template", "found"),
    [
        ("./deploy.sh {{ params.t }}", [("t", "")]),
        ("./deploy.sh '{{ params.t }}'", [("t", "'")]),
        ('./deploy.sh "{{ params["t"] }}"', [("t", '"')]),
        ('echo "it\'s" {{ params.t }}', [("t", "")]),
        ('echo \'a "b\' {{ params.t }} "{{ params.u | upper }}"', [("t", ""), ("u", '"')]),
        ("{% if params.flag %}--flag{% endif %} {{ version }}", []),
        ("echo \\' {{ params.t }}", [("t", "")]),
    ],
)
def test_embedded_parameters_and_their_quotes(template, found) -> None:
    """Each {{ params.X }} is found with the quote it sits in; control blocks and other names are not."""
    assert shell.embedded_params(template) == found


def test_parameters_render_as_quoted_references_and_test_as_values() -> None:
    """{{ params.x }} becomes "${RELEASE_PARAM_X}"; if/== see the value; concatenation stays quoted."""
    from jinja2 import Environment, StrictUndefined

    env = Environment(undefined=StrictUndefined, autoescape=False)
    template = '{% if params.go and params.env == "prod" %}deploy {{ params.ticket ~ "-x" }}{% endif %} {{ version }}'
    names = {"version": "1.2.3"}
    rendered = shell.render(template, env, names, {"go": True, "env": "prod", "ticket": "$(reboot)"})
    assert rendered == 'deploy "${RELEASE_PARAM_TICKET}"-x 1.2.3'
    assert shell.render(template, env, names, {"go": False, "env": "prod", "ticket": "x"}) == " 1.2.3"


def test_validate_warns_for_every_embedded_parameter(tmp_path: Path) -> None:
    """validate passes a definition embedding a parameter unquoted, and warns naming the key and the variable."""
    data = minimal_definition("warn")
    data["parameters"] = {"ticket": {"type": "string", "default": "T-1"}}
    data["components"][0]["deploy"] = command("./deploy.sh {{ params.ticket }}")
    path = write_definition(tmp_path, "warn.yaml", data)
    out = subprocess.run(
        [sys.executable, "-m", "release_mgmt", "validate", str(path)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (
        f"{path}: components[0].deploy.command: embeds trigger parameter 'ticket': it reaches the shell as "
        '"${RELEASE_PARAM_TICKET}" (never as raw text); writing "${RELEASE_PARAM_TICKET}" yourself says so (warning)'
    ) in out.stdout


def test_nul_bytes_are_refused() -> None:
    """No environment can hold a NUL byte: such a value is refused naming the parameter."""
    with pytest.raises(ParameterError, match="parameter ticket contains a NUL byte"):
        shell.param_env({"ticket": "a\x00b"})
