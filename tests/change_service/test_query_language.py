"""ServiceNow's encoded queries against a straightforward Python reading of the same query (issue 18).

Hypothesis builds random queries -- ``^NQ`` unions of ``^`` conjunctions of ``^OR`` disjunctions of terms with
every operator served -- renders each as an encoded query string, and checks that the database (SQLite, and
PostgreSQL, whose collation and LIKE differ) returns exactly the records, in exactly the order, that the Python
evaluation of the same tree picks. The records are random too (drawn once per database from a seed), with
values chosen to collide: prefixes, suffixes, empty values, ``^``, ``%``, ``_``, upper case, non-ASCII.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from release_mgmt.change_service import tables
from release_mgmt.change_service.query import parse_query
from release_mgmt.change_service.records import ChangeRequest
from release_mgmt.change_service.store import ChangeStore

WORDS = ["", "a", "ab", "abc", "b", "ba", "A", "Ab", "a^b", "^", "%", "a_c", "abc%", "é", "éa", "zz", "a b", "10", "9"]
TEXT_FIELDS = ["short_description", "correlation_id", "risk", "cmdb_ci"]
NUMBER_FIELDS = {"state": [-5, -4, -3, -2, -1, 0, 3, 4], "sys_mod_count": [0, 1, 2, 10]}
TEXT_OPS = ["=", "!=", "LIKE", "NOT LIKE", "STARTSWITH", "ENDSWITH", "IN", "NOT IN", "ISEMPTY", "ISNOTEMPTY"]
ORDER_OPS = ["<", ">", "<=", ">="]
RECORDS = 80


@dataclass(frozen=True)
class T:
    field: str
    op: str
    value: object  # a text, a number, or a list of either (IN)


def _record(rng: random.Random, n: int) -> dict[str, Any]:
    record: dict[str, Any] = {f: rng.choice(WORDS) for f in TEXT_FIELDS}
    record |= {f: rng.choice(values) for f, values in NUMBER_FIELDS.items()}
    return record | {"number": f"CHG{n:07d}", "sys_id": uuid.uuid4().hex}


def _seed(store: ChangeStore) -> list[dict[str, Any]]:
    rng = random.Random(18)
    records = [_record(rng, n) for n in range(RECORDS)]
    with Session(store.engine) as session, session.begin():
        for r in records:
            session.add(ChangeRequest(**r, sys_created_on="2026-11-28 10:00:00", sys_updated_on="2026-11-28 10:00:00"))
    return records


# -- the Python reading ----------------------------------------------------------------------------------------


def holds(term: T, record: dict[str, Any]) -> bool:  # noqa: C901 - one line per operator
    have: Any = record[term.field]
    want: Any = term.value
    match term.op:
        case "=":
            return have == want
        case "!=":
            return have != want
        case "<":
            return have < want
        case ">":
            return have > want
        case "<=":
            return have <= want
        case ">=":
            return have >= want
        case "LIKE":
            return str(want) in str(have)
        case "NOT LIKE":
            return str(want) not in str(have)
        case "STARTSWITH":
            return str(have).startswith(str(want))
        case "ENDSWITH":
            return str(have).endswith(str(want))
        case "IN":
            return have in want
        case "NOT IN":
            return have not in want
        case "ISEMPTY":
            return have == ""
        case "ISNOTEMPTY":
            return have != ""
    raise AssertionError(term.op)


def matches(tree: list[list[list[T]]], record: dict[str, Any]) -> bool:
    if not tree:
        return True
    return any(all(any(holds(t, record) for t in clause) for clause in group) for group in tree)


def expected(tree: list[list[list[T]]], order: list[tuple[str, bool]], records: list[dict[str, Any]]) -> list:
    found = sorted((r for r in records if matches(tree, r)), key=lambda r: r["number"])
    for name, descending in reversed(order or [("sys_created_on", False)]):
        if name != "sys_created_on":  # every record was created in the same second
            found.sort(key=lambda r: r[name], reverse=descending)
    return [r["sys_id"] for r in found]


# -- the encoded query -----------------------------------------------------------------------------------------


def _encode(value: object) -> str:
    if isinstance(value, list):
        return ",".join(_encode(v) for v in value)
    return str(value).replace("^", "^^")


def render(tree: list[list[list[T]]], order: list[tuple[str, bool]]) -> str:
    def term(t: T) -> str:
        return f"{t.field}{t.op}{'' if t.op in ('ISEMPTY', 'ISNOTEMPTY') else _encode(t.value)}"

    groups = ["^".join("^OR".join(term(t) for t in clause) for clause in group) for group in tree]
    ordering = [f"ORDERBY{'DESC' if d else ''}{f}" for f, d in order]
    return "^".join(filter(None, ["^NQ".join(groups), *ordering]))


# The value of a comparison never starts with '=' ('a<=b' would read as '<=' 'b'), as on ServiceNow.
_safe_words = [w for w in WORDS if not w.startswith("=")]


@st.composite
def terms(draw: st.DrawFn) -> T:
    if draw(st.booleans()):
        name = draw(st.sampled_from(list(NUMBER_FIELDS)))
        op = draw(st.sampled_from(["=", "!=", "IN", "NOT IN", *ORDER_OPS]))
        pool = [*NUMBER_FIELDS[name], -7, 5]
        value: object = (
            draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4)) if "IN" in op else draw(st.sampled_from(pool))
        )
        return T(name, op, value)
    name = draw(st.sampled_from(TEXT_FIELDS))
    op = draw(st.sampled_from([*TEXT_OPS, *ORDER_OPS]))
    if "IN" in op and "LIKE" not in op:
        items = [w for w in _safe_words if "," not in w]
        return T(name, op, draw(st.lists(st.sampled_from(items), min_size=1, max_size=4)))
    return T(name, op, "" if op in ("ISEMPTY", "ISNOTEMPTY") else draw(st.sampled_from(_safe_words)))


trees = st.lists(st.lists(st.lists(terms(), min_size=1, max_size=3), min_size=1, max_size=3), max_size=3)
orders = st.lists(st.tuples(st.sampled_from([*TEXT_FIELDS, *NUMBER_FIELDS]), st.booleans()), max_size=2)


def _check(store: ChangeStore, records: list[dict[str, Any]], tree, order) -> None:
    text = render(tree, order)
    query = parse_query(text)
    page = tables.read_page(store.engine, tables.CHANGES, query, offset=0, limit=1000, releases=None)
    got = [r["sys_id"] for r in page.records]
    assert got == expected(tree, order, records), text
    assert page.total == len(got)


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory):
    store = ChangeStore(f"sqlite:///{tmp_path_factory.mktemp('query') / 'changes.db'}")
    return store, _seed(store)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees, order=orders)
def test_queries_agree_with_python_on_sqlite(sqlite_store, tree, order) -> None:
    store, records = sqlite_store
    _check(store, records, tree, order)


@pytest.fixture(scope="module")
def postgres_store(postgres_server):
    store = ChangeStore(postgres_server.create_database("query_language"))
    return store, _seed(store)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees, order=orders)
def test_queries_agree_with_python_on_postgresql(postgres_store, tree, order) -> None:
    store, records = postgres_store
    _check(store, records, tree, order)


record_sets = st.lists(
    st.fixed_dictionaries(
        {
            **{f: st.sampled_from(WORDS) for f in TEXT_FIELDS},
            **{f: st.sampled_from(values) for f, values in NUMBER_FIELDS.items()},
        }
    ),
    max_size=12,
)


@pytest.fixture(scope="module")
def scratch_store(tmp_path_factory: pytest.TempPathFactory) -> ChangeStore:
    return ChangeStore(f"sqlite:///{tmp_path_factory.mktemp('scratch') / 'changes.db'}")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=record_sets, tree=trees, order=orders)
def test_queries_agree_with_python_over_random_records(scratch_store, drawn, tree, order) -> None:
    """The records are drawn by hypothesis too (and shrunk with the query when they disagree)."""
    records = [r | {"number": f"CHG{n:07d}", "sys_id": uuid.uuid4().hex} for n, r in enumerate(drawn)]
    with Session(scratch_store.engine) as session, session.begin():
        session.query(ChangeRequest).delete()
        for r in records:
            session.add(ChangeRequest(**r, sys_created_on="2026-11-28 10:00:00", sys_updated_on="2026-11-28 10:00:00"))
    _check(scratch_store, records, tree, order)


def test_operator_precedence_and_escapes(sqlite_store) -> None:
    """OR binds tighter than AND, ^NQ adds a query's results, ^^ is a literal ^ and two values for one field
    match nothing (number=A^number=B: the last term does not win)."""
    store, records = sqlite_store
    first, second = records[0]["number"], records[1]["number"]

    def numbers(text: str) -> list[object]:
        page = tables.read_page(store.engine, tables.CHANGES, parse_query(text), offset=0, limit=100, releases=None)
        return [r["number"] for r in page.records]

    assert numbers(f"number={first}^number={second}") == []
    assert numbers(f"number={first}^ORnumber={second}") == [first, second]
    assert numbers(f"number={second}^NQnumber={first}^ORDERBYDESCnumber") == [second, first]
    carets = [r["number"] for r in records if r["risk"] == "a^b"]
    assert numbers("risk=a^^b") == carets
    assert carets


def test_a_database_from_before_issue_18_gets_the_new_columns(tmp_path: Path) -> None:
    """An older change database (no opened_by, requested_by, sys_updated_by, sys_mod_count, journal name) keeps
    its records and is served."""
    import sqlite3

    path = tmp_path / "old.db"
    ChangeStore(f"sqlite:///{path}").create({"short_description": "old"}, "bot")
    with sqlite3.connect(path) as db:
        for column in ("opened_by", "requested_by", "sys_updated_by", "sys_mod_count"):
            db.execute(f"ALTER TABLE change_request DROP COLUMN {column}")
        db.execute("ALTER TABLE sys_journal_field DROP COLUMN name")
    store = ChangeStore(f"sqlite:///{path}")
    [old] = store.query([], 10)
    assert (old["short_description"], old["sys_mod_count"], old["opened_by"]) == ("old", "0", "")
    assert store.update(old["sys_id"], {"work_notes": "still here"}, "bot")["sys_mod_count"] == "1"  # type: ignore[index]
