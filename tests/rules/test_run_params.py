"""Trigger parameters: versions are safe strings, environments a prefix of the promotion order."""

from __future__ import annotations

import re

import pytest

from release_mgmt.errors import ParameterError
from release_mgmt.rules.run_params import select

ENVS = ["dev", "staging", "prod"]


def test_defaults_select_every_environment() -> None:
    """Without an environments parameter the run goes through the whole promotion order."""
    sel = select({"version_api": "1.2.3"}, ["api"], ENVS)
    assert sel.environments == ("dev", "staging", "prod")
    assert sel.versions == {"api": "1.2.3"}
    assert sel.dry_run is False


def test_consecutive_environments_are_accepted() -> None:
    """dev+staging, or staging+prod (a later start, checked by the promotion rule) are valid."""
    first = select({"version_api": "1", "environments": ["dev", "staging"]}, ["api"], ENVS)
    assert (first.environments, first.source_environment) == (("dev", "staging"), None)
    later = select({"version_api": "1", "environments": ["staging", "prod"]}, ["api"], ENVS)
    assert (later.environments, later.source_environment) == (("staging", "prod"), "dev")


@pytest.mark.parametrize(
    ("chosen", "message"),
    [
        (["dev", "prod"], "skips an environment of the promotion order dev -> staging -> prod"),
        (["prod", "staging"], "skips an environment"),
        (["qa"], "unknown environment(s) qa"),
        ([], "choose at least one environment"),
    ],
)
def test_bad_environment_selection(chosen: list[str], message: str) -> None:
    """Selections that skip an environment or name an unknown one are refused with the reason."""
    with pytest.raises(ParameterError, match=re.escape(message)):
        select({"version_api": "1", "environments": chosen}, ["api"], ENVS)


@pytest.mark.parametrize("version", ["1.0; rm -rf /", "$(id)", "", " 1.0", "1.0\n", None, 3])
def test_unsafe_versions_are_refused(version: object) -> None:
    """A version goes into shell commands, so only plain version characters are accepted."""
    with pytest.raises(ParameterError, match="version_api"):
        select({"version_api": version}, ["api"], ENVS)


def test_dry_run_must_be_boolean() -> None:
    """dry_run 'yes' is refused rather than guessed."""
    with pytest.raises(ParameterError, match="dry_run"):
        select({"version_api": "1", "dry_run": "yes"}, ["api"], ENVS)
