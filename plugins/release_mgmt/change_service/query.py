"""ServiceNow's encoded queries (``sysparm_query``) as the built-in service serves them: parsed into a tree,
then compiled to one SQL condition over a table's columns.

``a=1^b!=2^ORc=3^NQd=4^ORDERBYDESCnumber`` reads ``(a=1 AND (b!=2 OR c=3)) OR (d=4)``, newest number first:
``^`` joins terms with AND, ``^OR`` joins a term to the one before it (OR binds tighter than AND), ``^NQ``
starts a new query whose results are added, ``ORDERBY``/``ORDERBYDESC`` order the results wherever they stand,
and ``^^`` is a literal ``^`` inside a value. Operators: ``= != LIKE NOT LIKE STARTSWITH ENDSWITH IN NOT IN
ISEMPTY ISNOTEMPTY < > <= >=``. Comparisons are exact (case-sensitive) and ``<``/``>`` order texts by code
point, numbers as numbers, on SQLite and PostgreSQL alike. Anything else -- an unknown field or operator, a
malformed term -- is a 400 naming it (ServiceNow would drop the term and return more rows than asked for).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, not_, or_, true

from release_mgmt.change_service.fields import ChangeRuleError, check_text

#: longest first, so ``NOT IN`` is never read as ``NOT`` + ``IN`` and ``ISEMPTY`` never as ``IN``
OPERATORS = (
    "ISNOTEMPTY",
    "ISEMPTY",
    "NOT LIKE",
    "NOT IN",
    "STARTSWITH",
    "ENDSWITH",
    "LIKE",
    "IN",
    "!=",
    "<=",
    ">=",
    "=",
    "<",
    ">",
)
NO_VALUE = ("ISEMPTY", "ISNOTEMPTY")
TEXT_ONLY = ("LIKE", "NOT LIKE", "STARTSWITH", "ENDSWITH")
FIELD = re.compile(r"[a-z_][a-z0-9_]*")
MAX_QUERY, MAX_TERMS, MAX_LIST = 16_000, 100, 1_000
END = "EQ"  # ServiceNow's UI ends queries with ^EQ


@dataclass(frozen=True)
class Term:
    field: str
    op: str
    value: str


@dataclass
class Query:
    """``groups``: the ``^NQ`` queries; each a list of AND-ed clauses; each clause a list of OR-ed terms."""

    groups: list[list[list[Term]]] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)

    def terms(self) -> list[Term]:
        return [t for group in self.groups for clause in group for t in clause]


def invalid(detail: str) -> ChangeRuleError:
    return ChangeRuleError("Invalid query", detail, 400)


def parse_term(text: str) -> Term:
    """``fieldOPvalue`` -> Term; a 400 naming the term when it is not one."""
    match = FIELD.match(text)
    if not match:
        raise invalid(f"a term starts with a field name (lower case), not {text[:60]!r}")
    name, rest = match.group(), text[match.end() :]
    op = next((o for o in OPERATORS if rest.startswith(o)), None)
    if op is None:
        raise invalid(f"unknown operator after {name!r} in {text[:60]!r}; use one of {', '.join(OPERATORS)}")
    value = rest[len(op) :]
    if op in NO_VALUE and value:
        raise invalid(f"{name}{op} takes no value, not {value[:60]!r}")
    return Term(name, op, value)


def parse_query(text: str) -> Query:
    """The tree of an encoded query (see the module's docstring); the empty query matches everything."""
    check_text("sysparm_query", text, MAX_QUERY)
    query = Query()
    group: list[list[Term]] = []
    count = 0
    for raw in text.replace("^^", "\x01").split("^"):
        token = raw.replace("\x01", "^")
        if token in ("", END) or _ordering(token, query):
            continue
        count += 1
        if count > MAX_TERMS:
            raise invalid(f"a query has at most {MAX_TERMS} terms")
        if token.startswith("NQ"):
            if group:
                query.groups.append(group)
            group = []
            token = token.removeprefix("NQ")
        if token.startswith("OR") and not FIELD.match(token):
            if not group:
                raise invalid(f"^OR needs a term before it: {token[:60]!r}")
            group[-1].append(parse_term(token.removeprefix("OR")))
        else:
            group.append([parse_term(token)])
    if group:
        query.groups.append(group)
    return query


def _ordering(token: str, query: Query) -> bool:
    """Whether ``token`` is an ORDERBY or ORDERBYDESC term (added to ``query.order``)."""
    for prefix, descending in (("ORDERBYDESC", True), ("ORDERBY", False)):
        if token.startswith(prefix):
            query.order.append((_order_field(token.removeprefix(prefix)), descending))
            return True
    return False


def _order_field(name: str) -> str:
    if not FIELD.fullmatch(name):
        raise invalid(f"ORDERBY names a field, not {name[:60]!r}")
    return name


@dataclass(frozen=True)
class Columns:
    """What a query may name: ``columns`` (field -> SQL column), which of them are ``numeric``, and the
    database's ``dialect`` (PostgreSQL compares texts byte-wise only under the C collation)."""

    columns: Mapping[str, Any]
    numeric: frozenset[str]
    dialect: str

    def column(self, name: str) -> Any:
        if name not in self.columns:
            raise invalid(f"unknown field {name!r}; the fields are {', '.join(sorted(self.columns))}")
        return self.columns[name]

    def text(self, name: str) -> Any:
        """The column as a text compared by code point."""
        column = self.column(name)
        return column.collate("C") if self.dialect == "postgresql" else column

    def sort_key(self, name: str) -> Any:
        return self.column(name) if name in self.numeric else self.text(name)


def _number(name: str, value: str) -> int:
    text = value.strip()
    if not re.fullmatch(r"-?[0-9]{1,12}", text):
        raise invalid(f"{name} is a number; {value[:60]!r} is not")
    return int(text)


def _items(value: str) -> list[str]:
    items = value.split(",")
    if len(items) > MAX_LIST:
        raise invalid(f"IN takes at most {MAX_LIST} values")
    return items


COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "=": lambda c, v: c == v,
    "!=": lambda c, v: c != v,
    "<": lambda c, v: c < v,
    ">": lambda c, v: c > v,
    "<=": lambda c, v: c <= v,
    ">=": lambda c, v: c >= v,
}


def compile_term(term: Term, columns: Columns) -> Any:
    """One term as SQL over ``columns``."""
    name, op, value = term.field, term.op, term.value
    numeric = name in columns.numeric
    column = columns.column(name)  # equality is byte-wise under any deterministic collation: indexes still serve
    if op in NO_VALUE:
        empty = column.is_(None) if numeric else column == ""
        return empty if op == "ISEMPTY" else not_(empty)
    if op in ("IN", "NOT IN"):
        items = [_number(name, v) if numeric else v for v in _items(value)]
        inside = column.in_(items)
        return inside if op == "IN" else not_(inside)
    if op in TEXT_ONLY:
        if numeric:
            raise invalid(f"{name} is a number: {op} compares texts")
        check_text(name, value, MAX_QUERY)
        length = len(value)
        if op in ("LIKE", "NOT LIKE"):
            found = _position(column, value, columns.dialect) > 0 if value else true()
            return found if op == "LIKE" else not_(found)
        if op == "STARTSWITH":
            return func.substr(column, 1, length) == value if value else true()
        return and_(func.length(column) >= length, func.substr(column, func.length(column) - length + 1) == value)
    ordered = column if numeric else columns.text(name)  # < and > by code point, on PostgreSQL too
    return COMPARISONS[op](ordered, _number(name, value) if numeric else value)


def _position(column: Any, value: str, dialect: str) -> Any:
    """Where ``value`` first occurs in the column (0: nowhere), case-sensitive on both databases."""
    return func.strpos(column, value) if dialect == "postgresql" else func.instr(column, value)


def compile_query(query: Query, columns: Columns) -> ColumnElement[bool]:
    """The query as one SQL condition (true for the empty query)."""
    if not query.groups:
        return true()
    groups = [and_(true(), *(or_(*(compile_term(t, columns) for t in c)) for c in g)) for g in query.groups]
    return or_(false(), *groups)


def order_by(query: Query, columns: Columns, default: str, tiebreak: Any) -> list[Any]:
    """The ORDER BY list: the query's fields (or ``default``), then the ``tiebreak`` column (unique), so that
    pages never overlap."""
    keys = query.order or [(default, False)]
    clauses = [columns.sort_key(name).desc() if desc else columns.sort_key(name) for name, desc in keys]
    return [*clauses, tiebreak]


def select_fields(record: dict[str, Any], fields: str | None) -> dict[str, Any]:
    """The record's fields named in ``sysparm_fields``, in that order; unknown names are left out (as
    ServiceNow does)."""
    if not fields:
        return record
    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    return {f: record[f] for f in wanted if f in record}
