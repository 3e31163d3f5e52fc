"""HTTP steps on Airflow's HTTP provider: ``http`` calls a deploy API, ``http_check`` checks health.

Both reach their target through an Airflow HTTP connection (``connection`` + ``endpoint``:
base URL and credentials live in the connection) or, for a check, a plain ``url``. Every call
has a timeout; retries wait with backoff and honour ``Retry-After``. Errors carry the status and
a short body excerpt, never credentials.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator
from tenacity import RetryCallState

from release_mgmt import errors
from release_mgmt.errors import StepError
from release_mgmt.retry import RETRYABLE_STATUSES, RetryPolicy, TryAgain, retry_after
from release_mgmt.steps.base import StepContext, StepModel, StepOutcome

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


def excerpt(text: str, limit: int = 200) -> str:
    """The start of a response body, on one line (errors.excerpt, shorter: step errors name several targets)."""
    return errors.excerpt(text, limit)


class _Target(StepModel):
    """Where an HTTP step sends its request: an Airflow HTTP connection plus endpoint, or a URL."""

    connection: str | None = Field(default=None, description="Airflow HTTP connection id (base URL, auth).")
    endpoint: str = Field(default="", description="Path after the connection's base URL, templated.")
    url: str | None = Field(default=None, description="Full URL, when no connection is used.")
    method: Method = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=10, gt=0, le=600, description="Time limit of one request.")

    @model_validator(mode="after")
    def _one_target(self) -> _Target:
        if (self.connection is None) == (self.url is None):
            raise ValueError("set either connection (with endpoint) or url, not both and not neither")
        return self

    def where(self) -> str:
        return self.url or f"{self.connection}:{self.endpoint or '/'}"

    def send(self, json_body: Any = None, params: dict[str, str] | None = None) -> Any:
        """One request; returns the requests Response whatever its status (connection errors raise)."""
        if self.url is not None:
            import requests

            return requests.request(
                self.method, self.url, json=json_body, params=params, headers=self.headers, timeout=self.timeout_seconds
            )
        from airflow.providers.http.hooks.http import HttpHook

        hook = HttpHook(method=self.method, http_conn_id=str(self.connection))
        options = {"timeout": self.timeout_seconds, "check_response": False}
        return hook.run(
            self.endpoint,
            data=params,
            headers=self.headers,
            extra_options=options,
            **({"json": json_body} if json_body is not None else {}),
        )


class HttpStep(_Target):
    """Call a deployment or webhook API; retried on 429, 5xx and connection errors with backoff."""

    type: Literal["http"]
    method: Method = "POST"
    json_body: dict[str, Any] | list[Any] | None = Field(
        default=None, alias="json", description="JSON body, templated."
    )
    expected_status: tuple[int, ...] = Field(default=(200, 201, 202, 204), min_length=1)
    retries: int = Field(default=3, ge=0, le=10, description="Extra attempts after a retryable failure.")
    backoff_seconds: float = Field(default=1.0, ge=0, le=300, description="First wait; doubles each retry.")
    max_wait_seconds: float = Field(default=60, gt=0, le=3600, description="Cap on one wait, Retry-After included.")
    cancel_endpoint: str | None = Field(
        default=None,
        min_length=1,
        description="Called (POST, same connection, the RELEASE_* values as JSON) when the task is killed while "
        "this request or its retries run: the deploy API's way to stop what it started.",
    )

    templated: ClassVar[tuple[str, ...]] = ("connection", "endpoint", "url", "json_body", "headers", "cancel_endpoint")

    @model_validator(mode="after")
    def _cancel_needs_connection(self) -> HttpStep:
        if self.cancel_endpoint is not None and self.connection is None:
            raise ValueError("cancel_endpoint is called through connection: set connection (with endpoint)")
        return self

    def _cancel(self, ctx: StepContext) -> str:
        """The deploy API's cancel, when it declares one (a stop on on_kill: says how it went, never raises)."""
        if self.cancel_endpoint is None:
            return f"left as it is: no cancel_endpoint; what {self.where()} started may go on"
        from airflow.providers.http.hooks.http import HttpHook

        target = f"{self.connection}:{self.cancel_endpoint}"
        try:
            hook = HttpHook(method="POST", http_conn_id=str(self.connection))
            options = {"timeout": min(self.timeout_seconds, 5.0), "check_response": False}
            response = hook.run(self.cancel_endpoint, json=ctx.env_vars(), extra_options=options)
        except Exception as exc:  # noqa: BLE001 - reported, never raised from on_kill
            return f"cancel FAILED: POST {target}: {type(exc).__name__}: {excerpt(str(exc))}; check it by hand"
        if response.status_code >= 300:
            return f"cancel FAILED: POST {target} answered HTTP {response.status_code}: {excerpt(response.text)}"
        return f"canceled: POST {target} answered HTTP {response.status_code}"

    def describe(self) -> str:
        return f"{self.method} {self.where()} (expect {', '.join(map(str, self.expected_status))})"

    def run(self, ctx: StepContext, sleep: Callable[[float], None] = time.sleep) -> StepOutcome:
        """Send until an expected status (the retry policy of retry.py: 429 with Retry-After, 5xx and dropped
        connections retried with backoff); anything else fails at once."""
        import requests

        def note(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            why = exc.why if isinstance(exc, TryAgain) else f"{type(exc).__name__}: {excerpt(str(exc))}"
            wait = state.next_action.sleep if state.next_action else 0.0
            ctx.log.warning(
                "attempt %d of %d failed (%s); retrying in %.1fs", state.attempt_number, self.retries + 1, why, wait
            )

        policy = RetryPolicy(
            attempts=self.retries + 1,
            backoff=self.backoff_seconds,
            max_wait=self.max_wait_seconds,
            retry_on=lambda exc: isinstance(exc, requests.RequestException),
            sleep=sleep,
            before_sleep=note,
        )
        try:
            with ctx.stopper.while_running(f"{self.method} {self.where()}", lambda: self._cancel(ctx)):
                for attempt in policy.retrying():
                    with attempt:
                        return self._once(ctx)
        except (TryAgain, _Refused) as exc:
            last = exc.why
        except requests.RequestException as exc:
            last = f"{type(exc).__name__}: {excerpt(str(exc))}"
        raise StepError(
            f"{ctx.action} of {ctx.component} in {ctx.environment}: {self.method} {self.where()} "
            f"failed: {last} (expected {', '.join(map(str, self.expected_status))})"
        )

    def _once(self, ctx: StepContext) -> StepOutcome:
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            response = self.send(self.json_body)
        except AirflowNotFoundException as exc:
            raise StepError(
                f"{self.connection}: no such Airflow connection; add an HTTP connection with this id"
            ) from exc
        ctx.log.info("%s %s -> HTTP %s", self.method, self.where(), response.status_code)
        if response.status_code in self.expected_status:
            return StepOutcome(output=excerpt(response.text))
        last = f"HTTP {response.status_code}: {excerpt(response.text)}"
        if response.status_code in RETRYABLE_STATUSES:
            raise TryAgain(last, retry_after(response.headers))
        raise _Refused(last)


class _Refused(Exception):  # noqa: N818 - an answer that no retry changes, turned into a StepError by run()
    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class HttpCheckStep(_Target):
    """Check an endpoint until it passes ``successes`` times in a row, within ``within_seconds``."""

    type: Literal["http_check"]
    expected_status: tuple[int, ...] = Field(default=(200,), min_length=1)
    body_contains: str | None = Field(default=None, description="Text the body must contain, templated.")
    json_field: str | None = Field(default=None, description="Dotted path in a JSON body, e.g. version or app.version.")
    equals: str | None = Field(default=None, description="Value json_field must equal, e.g. {{ version }}.")
    successes: int = Field(default=1, ge=1, le=100, description="Consecutive passing checks required.")
    interval_seconds: float = Field(default=2, ge=0, le=600)
    within_seconds: float = Field(default=60, gt=0, le=86400, description="Time budget for all attempts.")
    max_latency_ms: int | None = Field(default=None, gt=0, description="A slower answer counts as failing.")

    templated: ClassVar[tuple[str, ...]] = ("connection", "endpoint", "url", "body_contains", "equals", "headers")

    @model_validator(mode="after")
    def _equals_needs_field(self) -> HttpCheckStep:
        if self.equals is not None and self.json_field is None:
            raise ValueError("equals needs json_field (the JSON value to compare)")
        return self

    def describe(self) -> str:
        want = f", {self.json_field} == {self.equals}" if self.json_field else ""
        return (
            f"check {self.method} {self.where()} (status {'/'.join(map(str, self.expected_status))}{want}, "
            f"{self.successes}x in a row within {self.within_seconds:g}s)"
        )

    def problem(self, response: Any, latency_ms: float) -> str | None:
        """Why one answer fails the check, or None when it passes."""
        if response.status_code not in self.expected_status:
            return f"HTTP {response.status_code}: {excerpt(response.text)}"
        if self.max_latency_ms is not None and latency_ms > self.max_latency_ms:
            return f"answered in {latency_ms:.0f} ms, over max_latency_ms {self.max_latency_ms}"
        if self.body_contains is not None and self.body_contains not in response.text:
            return f"body does not contain {self.body_contains!r}: {excerpt(response.text)}"
        if self.json_field is not None:
            value: Any
            try:
                value = response.json()
                for key in self.json_field.split("."):
                    value = value[key]
            except (ValueError, KeyError, TypeError, IndexError):
                return f"no JSON field {self.json_field!r} in {excerpt(response.text)}"
            if self.equals is not None and str(value) != self.equals:
                return f"{self.json_field} is {value!r}, expected {self.equals!r}"
        return None

    def run(self, ctx: StepContext, sleep: Callable[[float], None] = time.sleep) -> StepOutcome:
        def probe() -> str | None:
            started = time.monotonic()
            response = self.send()
            return self.problem(response, (time.monotonic() - started) * 1000)

        attempts, last = repeat_check(ctx, probe, self, sleep)
        if last is None:
            return StepOutcome(output=f"passed {self.successes} time(s)")
        raise StepError(
            f"validate of {ctx.component} in {ctx.environment}: {self.where()} did not pass "
            f"{self.successes} time(s) in a row within {self.within_seconds:g}s "
            f"({attempts} attempts); last problem: {last}"
        )


def repeat_check(
    ctx: StepContext, probe: Callable[[], str | None], step: Any, sleep: Callable[[float], None]
) -> tuple[int, str | None]:
    """Run ``probe`` (None = pass, else why not) until it passes ``step.successes`` times in a row, or
    ``step.within_seconds`` run out (waiting ``step.interval_seconds`` between tries): (attempts, None)
    on success, (attempts, the last problem) otherwise. A probe that raises counts as failing."""
    successes, interval_seconds = step.successes, step.interval_seconds
    within_seconds = step.within_seconds
    deadline = time.monotonic() + within_seconds
    streak, attempts, last = 0, 0, "no answer"
    while True:
        attempts += 1
        try:
            reason = probe()
        except Exception as exc:  # noqa: BLE001 - unreachable or malformed answers are failed checks
            reason = f"{type(exc).__name__}: {excerpt(str(exc))}"
        streak = 0 if reason else streak + 1
        last = reason or last
        ctx.log.info("check %d: %s", attempts, reason or f"ok ({streak}/{successes})")
        if streak >= successes:
            return attempts, None
        if time.monotonic() + interval_seconds > deadline:
            return attempts, last
        sleep(interval_seconds)
