"""The ``metrics_check`` step: a PromQL query against a Prometheus-compatible query API, with a threshold.

``GET <base>/api/v1/query?query=...`` answers ``{"status": "success", "data": {"resultType":
"vector", "result": [{"metric": {...}, "value": [<time>, "<number>"]}]}}``; every returned
series must satisfy ``<value> <op> <threshold>``, ``successes`` times in a row within the budget.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import Field

from release_mgmt.errors import StepError
from release_mgmt.steps.base import StepContext, StepOutcome
from release_mgmt.steps.http import _Target, excerpt, repeat_check

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def samples(payload: Any) -> list[tuple[str, float]]:
    """(series label, value) pairs of a query API answer; ValueError when it is not one."""
    if not isinstance(payload, dict) or payload.get("status") != "success":
        raise ValueError(f"query failed: {excerpt(str(payload))}")
    data = payload.get("data") or {}
    kind, result = data.get("resultType"), data.get("result") or []
    if kind == "scalar":
        return [("scalar", float(result[1]))]
    if kind == "vector":
        return [(str(item.get("metric") or {}), float(item["value"][1])) for item in result]
    raise ValueError(f"unsupported resultType {kind!r}; use a query that returns a vector or a scalar")


class MetricsCheckStep(_Target):
    """Check a PromQL query's value against a threshold (post-release validation from monitoring)."""

    type: Literal["metrics_check"]
    endpoint: str = Field(default="/api/v1/query", description="Query API path on the connection.")
    query: str = Field(min_length=1, description="PromQL, templated (e.g. with {{ version }}).")
    op: Literal["<", "<=", ">", ">=", "==", "!="] = Field(description="How each value compares to threshold.")
    threshold: float
    on_empty: Literal["fail", "pass"] = Field(default="fail", description="What a query without series means.")
    successes: int = Field(default=1, ge=1, le=100)
    interval_seconds: float = Field(default=15, ge=0, le=3600)
    within_seconds: float = Field(default=300, gt=0, le=86400)

    templated: ClassVar[tuple[str, ...]] = ("connection", "endpoint", "url", "query", "headers")

    def describe(self) -> str:
        return f"check metrics `{self.query}` {self.op} {self.threshold:g} at {self.where()}"

    def problem(self, payload: Any) -> str | None:
        """Why one query answer fails, or None when every series passes."""
        found = samples(payload)
        if not found:
            return None if self.on_empty == "pass" else "the query returned no series"
        bad = [f"{label}={value:g}" for label, value in found if not OPERATORS[self.op](value, self.threshold)]
        return f"not {self.op} {self.threshold:g}: {', '.join(bad)}" if bad else None

    def run(self, ctx: StepContext, sleep: Callable[[float], None] = time.sleep) -> StepOutcome:
        def probe() -> str | None:
            response = self.send(params={"query": self.query})
            if response.status_code != 200:
                return f"HTTP {response.status_code}: {excerpt(response.text)}"
            return self.problem(response.json())

        _, last = repeat_check(ctx, probe, self, sleep)
        if last is None:
            return StepOutcome(output="metrics ok")
        raise StepError(
            f"validate of {ctx.component} in {ctx.environment}: `{self.query}` did not stay "
            f"{self.op} {self.threshold:g} within {self.within_seconds:g}s; last problem: {last}"
        )
