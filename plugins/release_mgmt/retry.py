"""One retry policy for every HTTP call the package makes (the ServiceNow hook, the ``http`` step, the
triggers): bounded attempts, exponential backoff capped at ``max_wait``, a server's ``Retry-After`` honoured
(capped too), waits that really sleep. Built on tenacity (installed with Airflow), sync and async."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class TryAgain(Exception):  # noqa: N818 - a signal to the retry loop, not an error anyone sees
    """Raised inside an attempt to ask for another one; ``retry_after`` (seconds) when the server said."""

    def __init__(self, why: str, retry_after: float | None = None) -> None:
        super().__init__(why)
        self.why = why
        self.retry_after = retry_after


def retry_after(headers: Any) -> float | None:
    """The ``Retry-After`` header in seconds (None when absent or not a number)."""
    try:
        return max(0.0, float(headers.get("Retry-After", "")))
    except (TypeError, ValueError, AttributeError):
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` in all (or until ``deadline``); the n-th wait is ``backoff * 2**(n-1)`` or the server's
    Retry-After, at most ``max_wait``. ``retry_on`` decides which exceptions get another attempt (``TryAgain``
    always does)."""

    attempts: int = 5
    backoff: float = 1.0
    max_wait: float = 60.0
    retry_on: Callable[[BaseException], bool] = field(default=lambda exc: False)
    sleep: Callable[[float], Any] = time.sleep
    #: called before each wait (e.g. to log "attempt 2 of 4 failed ...; retrying in 2.0s")
    before_sleep: Callable[[RetryCallState], None] | None = None
    #: seconds after the first attempt when no further attempt starts (None: only ``attempts`` bounds it)
    deadline: float | None = None

    def _stop(self) -> Any:
        by_count = stop_after_attempt(self.attempts)
        return by_count if self.deadline is None else by_count | stop_after_delay(self.deadline)

    def wait(self, state: RetryCallState) -> float:
        """Seconds before the next attempt."""
        exc = state.outcome.exception() if state.outcome else None
        server = exc.retry_after if isinstance(exc, TryAgain) else None
        wanted = server if server is not None else self.backoff * 2 ** (state.attempt_number - 1)
        return float(min(wanted, self.max_wait))

    def _retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, TryAgain) or self.retry_on(exc)

    def retrying(self) -> Retrying:
        """The synchronous loop: ``for attempt in policy.retrying(): with attempt: ...``; the last exception
        is re-raised when every attempt failed."""
        return Retrying(
            stop=self._stop(),
            wait=self.wait,
            retry=retry_if_exception(self._retryable),
            sleep=self.sleep,
            before_sleep=self.before_sleep,
            reraise=True,
        )

    def async_retrying(self) -> AsyncRetrying:
        """The same loop for coroutines (``async for attempt in ...``); waits with ``asyncio.sleep``."""
        return AsyncRetrying(
            stop=self._stop(),
            wait=self.wait,
            retry=retry_if_exception(self._retryable),
            before_sleep=self.before_sleep,
            reraise=True,
        )
