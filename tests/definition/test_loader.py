"""Loader: YAML rules, every problem reported with file, line and key path, broken files isolated."""

from __future__ import annotations

from pathlib import Path

import pytest

from release_mgmt.definition.loader import load_file, load_paths
from release_mgmt.errors import DefinitionError
from tests.helpers import command, minimal_definition, write_definition

INVALID = Path(__file__).parent / "invalid"
CASES = sorted(p.stem for p in INVALID.glob("*.yaml"))


@pytest.mark.parametrize("case", CASES)
def test_invalid_definition_reports_exact_text(case: str) -> None:
    """Each invalid definition fails with exactly the lines in its .expected file."""
    path = INVALID / f"{case}.yaml"
    with pytest.raises(DefinitionError) as info:
        load_file(path, display=path.name)
    assert info.value.render() + "\n" == (INVALID / f"{case}.expected").read_text()


def test_every_invalid_case_has_expected_text() -> None:
    """No golden case is silently missing its expected output."""
    assert CASES
    assert sorted(p.stem for p in INVALID.glob("*.expected")) == CASES


def test_versions_stay_strings(tmp_path: Path) -> None:
    """`1.10` stays "1.10" (not the float 1.1) and `on` stays text, not a boolean."""
    text = (
        "name: shop\nowner: o\nenvironments: [{name: dev, variables: {flag: on, n: 08}}]\n"
        "components:\n  - name: api\n    version: 1.10\n"
        "    deploy: {type: command, command: x}\n    rollback: {type: command, command: y}\n"
    )
    loaded = load_file(write_definition(tmp_path, "v.yaml", text))
    assert loaded.definition.components[0].version == "1.10"
    assert loaded.definition.environments[0].variables == {"flag": "on", "n": "08"}


def test_valid_definition_loads(tmp_path: Path) -> None:
    """A minimal definition loads with defaults filled in."""
    loaded = load_file(write_definition(tmp_path, "shop.yaml", minimal_definition()))
    defn = loaded.definition
    assert defn.name == "shop"
    assert [e.name for e in defn.environments] == ["dev", "prod"]
    assert defn.components[0].rollback is not None
    assert defn.policy.require_rollback is True


def test_rollback_optional_when_policy_allows(tmp_path: Path) -> None:
    """policy.require_rollback: false accepts components without rollback."""
    data = minimal_definition(policy={"require_rollback": False})
    del data["components"][0]["rollback"]
    assert load_file(write_definition(tmp_path, "shop.yaml", data)).definition.components[0].rollback is None


def test_broken_file_never_hides_the_others(tmp_path: Path) -> None:
    """One invalid file is reported; every valid file beside it still loads."""
    write_definition(tmp_path, "a.yaml", minimal_definition("alpha"))
    write_definition(tmp_path, "b.yaml", "name: [unclosed\n")
    write_definition(tmp_path, "c.yml", minimal_definition("gamma"))
    write_definition(tmp_path, "notes.txt", "not a definition")
    report = load_paths([tmp_path], root=tmp_path)
    assert [i.definition.name for i in report.loaded] == ["alpha", "gamma"]
    assert [e.file for e in report.errors] == ["b.yaml"]
    assert "invalid YAML" in report.errors[0].render()


def test_duplicate_release_name_across_files(tmp_path: Path) -> None:
    """A second file reusing a release name is an error naming the first file."""
    write_definition(tmp_path, "a.yaml", minimal_definition("shop"))
    write_definition(tmp_path, "b.yaml", minimal_definition("shop"))
    report = load_paths([tmp_path], root=tmp_path)
    assert [i.display for i in report.loaded] == ["a.yaml"]
    assert report.errors[0].lines() == [
        "b.yaml:1: name: release name 'shop' is already used by a.yaml; give each release its own name"
    ]


def test_problem_lines_name_file_line_and_path(tmp_path: Path) -> None:
    """Errors point at the line of the offending key."""
    data = minimal_definition()
    data["components"][0]["validate"] = [command("ok"), {"type": "command"}]
    path = write_definition(tmp_path, "shop.yaml", data)
    with pytest.raises(DefinitionError) as info:
        load_file(path, display="shop.yaml")
    starts = [i for i, text in enumerate(path.read_text().splitlines(), 1) if text.strip() == "- type: command"]
    line = starts[-1]  # the second validation step, the one without a command
    assert info.value.lines() == [f"shop.yaml:{line}: components[0].validate[1].command: required key is missing"]


def test_unreadable_file(tmp_path: Path) -> None:
    """A file that is not UTF-8 text is reported, not raised as a crash."""
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(DefinitionError, match="the file is not UTF-8 text"):
        load_file(path)


def test_shared_approver_groups_file(tmp_path: Path) -> None:
    """Groups from approver_groups_file are merged; a group defined in both places is an error."""
    (tmp_path / "groups.yaml").write_text("sre: [alice, bob, carol]\n")
    data = minimal_definition(approver_groups_file="groups.yaml", approver_groups={"cab": ["dora", "erin"]})
    data["environments"][1]["gates"] = [{"type": "approval", "groups": ["sre", "cab"], "min_approvals": 2}]
    loaded = load_file(write_definition(tmp_path, "shop.yaml", data))
    assert loaded.definition.approver_groups == {"sre": ("alice", "bob", "carol"), "cab": ("dora", "erin")}
    data["approver_groups"] = {"sre": ["zed"]}
    with pytest.raises(DefinitionError, match=r"approver_groups_file: group\(s\) sre defined both here"):
        load_file(write_definition(tmp_path, "shop.yaml", data))


def test_shared_groups_file_errors_name_that_file(tmp_path: Path) -> None:
    """A missing or malformed shared file is reported with its own name."""
    data = minimal_definition(approver_groups_file="nope.yaml")
    with pytest.raises(DefinitionError, match=r"approver_groups_file: cannot read .*nope.yaml"):
        load_file(write_definition(tmp_path, "shop.yaml", data))
    (tmp_path / "bad.yaml").write_text("sre: alice\n")
    data["approver_groups_file"] = "bad.yaml"
    with pytest.raises(DefinitionError, match=r"bad.yaml: sre: Input should be a valid tuple"):
        load_file(write_definition(tmp_path, "shop.yaml", data))


def test_shared_calendars(tmp_path: Path) -> None:
    """`calendars: [name]` adds the windows of calendars/<name>.yaml beside the releases folder."""
    (tmp_path / "calendars").mkdir()
    (tmp_path / "calendars" / "company.yaml").write_text(
        "windows:\n  - {name: close, kind: freeze, reason: close, timezone: UTC,\n"
        "     start: '2026-12-20 00:00', end: '2026-12-27 00:00', environments: [prod, other-teams-env]}\n"
    )
    data = minimal_definition(calendars=["company"])
    loaded = load_file(write_definition(tmp_path / "releases", "shop.yaml", data))
    assert [w.name for w in loaded.definition.windows] == ["close"]
    data["calendars"] = ["nope"]
    with pytest.raises(DefinitionError, match=r"calendars\[0\]: no calendar .*nope.yaml; known calendars: company"):
        load_file(write_definition(tmp_path / "releases", "shop.yaml", data))


def test_broken_calendar_file_is_named(tmp_path: Path) -> None:
    """An invalid shared calendar is reported with its own file, line and key path."""
    (tmp_path / "calendars").mkdir()
    (tmp_path / "calendars" / "company.yaml").write_text(
        "windows:\n  - name: close\n    kind: freeze\n    reason: close\n    timezone: Mars/Base\n"
        "    cron: '0 0 * * *'\n    duration: 1h\n"
    )
    with pytest.raises(DefinitionError) as info:
        load_file(write_definition(tmp_path / "releases", "shop.yaml", minimal_definition(calendars=["company"])))
    assert info.value.lines()[0].endswith(
        "company.yaml:5: windows[0].timezone: unknown time zone 'Mars/Base'; use an IANA name such as "
        "Europe/Berlin or UTC"
    )


def test_break_glass_never_opens_a_freeze_by_timeout(tmp_path: Path) -> None:
    """break_glass with on_timeout approve is refused: only people may open a freeze."""
    data = minimal_definition(break_glass={"type": "approval", "users": ["a", "b"], "on_timeout": "approve"})
    with pytest.raises(DefinitionError, match=r"break_glass\.on_timeout: must be reject: only people may open"):
        load_file(write_definition(tmp_path, "shop.yaml", data))


def test_parameter_defaults_take_their_type(tmp_path: Path) -> None:
    """YAML numbers arrive as text; a typed parameter's default is converted, so the trigger form's default
    passes its own schema and a run started without conf gets the typed value."""
    from release_mgmt.dag.builder import trigger_params
    from release_mgmt.planning import plan_release

    parameters = {
        "replicas": {"type": "integer", "default": 3},
        "ratio": {"type": "number", "default": 0.5},
        "canary": {"type": "boolean", "default": False},
        "ticket": {"type": "string", "default": 42},
    }
    path = write_definition(tmp_path, "shop.yaml", minimal_definition(parameters=parameters))
    loaded = load_file(path)
    defaults = {k: v.default for k, v in loaded.definition.parameters.items()}
    assert defaults == {"replicas": 3, "ratio": 0.5, "canary": False, "ticket": "42"}
    assert [type(v) for v in defaults.values()] == [int, float, bool, str]
    params = trigger_params(plan_release(loaded.definition, "shop.yaml"))
    assert {k: params[k].resolve() for k in parameters} == defaults


def test_a_file_of_several_megabytes_is_refused_unread(tmp_path: Path) -> None:
    """A 3 MB definition is refused by its size with the fix, before its YAML is read; the others load."""
    write_definition(tmp_path, "good.yaml", minimal_definition("good"))
    big = minimal_definition("big", description="x" * 3_000_000)
    write_definition(tmp_path, "big.yaml", big)
    report = load_paths([tmp_path], root=tmp_path)
    assert [i.definition.name for i in report.loaded] == ["good"]
    [error] = report.errors
    assert error.lines() == [
        "big.yaml:1: the file is 3.0 MB; a definition is at most 1 MB: split it into several releases, or move "
        "shared windows into include/calendars and groups into a shared file"
    ]
