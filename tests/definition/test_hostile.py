"""Issue 17: values keep the meaning their author wrote, and the limits hold before any expensive work.

The refusals themselves are golden cases in tests/definition/invalid (one file per finding); these are the
behaviours that must keep working beside them."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from release_mgmt.definition import yaml_io
from release_mgmt.definition.budget import BudgetExceededError, time_budget
from release_mgmt.definition.loader import load_file
from release_mgmt.definition.templates import AIRFLOW_CONTEXT, AIRFLOW_FILTERS
from release_mgmt.errors import DefinitionError
from tests.helpers import write_definition

HTTP_RELEASE = """
name: shop
owner: team-a
components:
  - name: api
    version: 1.0.0
    deploy:
      type: http
      url: http://127.0.0.1:8080/deploy
      json: {replicas: 3, ratio: 0.5, canary: true, tag: '3', note: null, build: 08, items: [1, "1", 1.5e3]}
    rollback: {type: command, command: ./rollback.sh}
environments: [{name: prod}]
"""


def test_a_json_body_keeps_its_yaml_types(tmp_path: Path) -> None:
    """Numbers in an http step's json were sent as strings; unquoted numbers, booleans and null now keep their JSON
    types, quoted values stay text (and so does 08, which JSON has no number for)."""
    defn = load_file(write_definition(tmp_path, "shop.yaml", HTTP_RELEASE)).definition
    body = defn.components[0].deploy.json_body
    assert body == {
        "replicas": 3,
        "ratio": 0.5,
        "canary": True,
        "tag": "3",
        "note": None,
        "build": "08",
        "items": [1, "1", 1500.0],
    }
    assert defn.components[0].version == "1.0.0"  # everywhere else scalars stay text


def test_merge_keys_with_anchors_under_an_extension_key(tmp_path: Path) -> None:
    """YAML merge keys failed with a constructor error; now they merge, written keys override merged ones, and
    top-level x- keys hold the anchors."""
    text = """
name: shop
owner: team-a
x-step: &step {type: command, command: ./deploy.sh, timeout_seconds: 60}
components:
  - name: api
    version: 1.0.0
    deploy: {<<: *step, timeout_seconds: 5}
    rollback: {<<: *step, command: ./rollback.sh}
environments: [{name: prod}]
"""
    defn = load_file(write_definition(tmp_path, "shop.yaml", text)).definition
    deploy, rollback = defn.components[0].deploy, defn.components[0].rollback
    assert (deploy.command, deploy.timeout_seconds) == ("./deploy.sh", 5)
    assert (rollback.command, rollback.timeout_seconds) == ("./rollback.sh", 60)  # type: ignore[union-attr]


def test_an_integer_parameter_enum_is_integers(tmp_path: Path) -> None:
    """enum items were kept as strings ("default 2 is not one of enum: 1, 2, 4, 8"); now they take the type."""
    text = HTTP_RELEASE + "parameters:\n  replicas: {type: integer, default: 2, enum: [1, 2, 4, 8]}\n"
    param = load_file(write_definition(tmp_path, "shop.yaml", text)).definition.parameters["replicas"]
    assert (param.default, param.enum) == (2, (1, 2, 4, 8))


def test_limits_are_checked_before_anything_is_built() -> None:
    """A billion-laughs document is refused by the node walk, in far less time than expanding it would take."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 30)]
    started = time.perf_counter()
    with pytest.raises(yaml_io.LimitError, match="aliases"):
        yaml_io.parse("\n".join(lines))
    assert time.perf_counter() - started < 5  # 9**30 values if it were expanded
    with pytest.raises(yaml_io.LimitError, match="refers to the anchor"):
        yaml_io.parse("a: &a [1, *a]")
    with pytest.raises(yaml_io.LimitError, match="nested more than"):
        yaml_io.parse("a: " + "[" * 900 + "]" * 900)


def test_a_fifo_is_never_read(tmp_path: Path) -> None:
    """A named pipe as a definition would block the DAG processor forever; it is refused before opening."""
    import os

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(DefinitionError, match="not a regular file"):
        load_file(fifo)


def test_time_budget_interrupts_and_keeps_an_outer_timer() -> None:
    """The budget raises in the block, and an outer timer (Airflow's import timeout) fires later as it would."""
    fired: list[float] = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(time.monotonic()))
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.5)
        started = time.monotonic()
        with pytest.raises(BudgetExceededError, match=r"spinning took longer than 0\.2s"):
            _spin_within(0.2)
        assert time.monotonic() - started < 1.0
        while not fired and time.monotonic() - started < 5:
            time.sleep(0.05)
        assert fired
        assert 1.3 < fired[0] - started < 2.5
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_the_template_names_are_airflows_context() -> None:
    """The names a non-shell template may use are exactly the keys of Airflow's task context, and its filters
    Airflow's (invalid/fuzz_template_filter.yaml: an unknown filter is an error, ds is not)."""
    from airflow.sdk.definitions._internal.templater import FILTERS
    from airflow.sdk.definitions.context import Context

    assert set(Context.__annotations__) == AIRFLOW_CONTEXT
    assert set(FILTERS) == set(AIRFLOW_FILTERS)


def _spin_within(seconds: float) -> None:
    with time_budget(seconds, "spinning"):
        while True:
            pass


def test_thousands_of_items_or_mistakes_cost_one_short_report(tmp_path: Path) -> None:
    """22,000 components were validated one by one, and 75,000 wrong keys each got a sentence (seconds of work
    and megabytes of DAG docs): now the counts are checked first, and a report holds at most 50 problems."""
    many = ["name: big", "owner: o", "components:"]
    many += [f"  - {{name: c{i}, deploy: {{type: command}}}}" for i in range(22000)]
    started = time.perf_counter()
    with pytest.raises(DefinitionError) as info:
        load_file(write_definition(tmp_path, "many.yaml", "\n".join(many) + "\n"))
    assert [(p.path, p.message) for p in info.value.problems] == [
        ("components", "22,000 items; at most 100 (split the release)")
    ]
    wrong = ["name: big", "owner: o", "components: []", "environments:"]
    wrong += [f"  - {{name: e{i}, a: 1, b: 2, c: 3, d: 4}}" for i in range(20)]
    with pytest.raises(DefinitionError) as info:
        load_file(write_definition(tmp_path, "wrong.yaml", "\n".join(wrong) + "\n"))
    assert len(info.value.problems) == 51
    assert "32 more problems not shown; fix these first" in info.value.render()  # 80 keys, 2 lists
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    "text",
    [
        "./deploy.sh {{ version }} --port {{ vars.port }}",
        "{{version}}{{ vars.a.b }} {{ params.region }} {{ ds }}",
        "echo { not a template } {{ component }}",
        "{{ version }} }}",
        "{{ vars['port'] }} {{ version }}",
        "{{ version | upper }}",
        "{{ a }}{{ b.c.d }}{{ params.x.y }}",
    ],
)
def test_plain_templates_read_without_jinja_agree_with_jinja(text: str) -> None:
    """The fast path for plain {{ name.attr }} templates finds what Jinja's parser finds ({# #} forces it)."""
    from release_mgmt.definition import templates

    fast, full = templates._analysis(text), templates._analysis(text + "{# force the parser #}")
    assert (fast.problems, fast.names) == (full.problems, full.names)
    assert {k: set(v) for k, v in fast.attributes.items() if v} == {k: set(v) for k, v in full.attributes.items() if v}
