"""ServiceNow's encoded queries (``sysparm_query``) and field lists (``sysparm_fields``), as the built-in service
serves them."""

from __future__ import annotations

import re

from release_mgmt.change_service.fields import ChangeRuleError, check_text

TERM = re.compile(r"^(?P<field>[a-z_][a-z0-9_]*)(?P<op>!=|=)(?P<value>.*)$", re.DOTALL)


def parse_query(query: str) -> tuple[list[tuple[str, str, str]], str, bool]:
    """``a=1^b!=2^ORDERBYDESCnumber`` -> ([(a, =, 1), (b, !=, 2)], "number", True). ``^^`` is a literal ``^``
    inside a value, as in ServiceNow's encoded queries. Only ``=`` and ``!=`` terms are served."""
    check_text("sysparm_query", query, 4000)
    terms: list[tuple[str, str, str]] = []
    order, descending = "sys_created_on", False
    for raw in filter(None, re.split(r"\^(?!\^)", query.replace("^^", "\x01"))):
        term = raw.replace("\x01", "^")
        if term.startswith("ORDERBYDESC"):
            order, descending = term.removeprefix("ORDERBYDESC"), True
        elif term.startswith("ORDERBY"):
            order, descending = term.removeprefix("ORDERBY"), False
        elif match := TERM.match(term):
            terms.append((match["field"], match["op"], match["value"]))
        else:
            raise ChangeRuleError(
                "Invalid query", f"only field=value and field!=value terms are served, not {term!r}", 400
            )
    return terms, order, descending


def select_fields(record: dict[str, str], fields: str | None) -> dict[str, str]:
    if not fields:
        return record
    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    return {f: record.get(f, "") for f in wanted}
