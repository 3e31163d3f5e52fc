"""Time budgets for work whose cost a definition decides (expanding a recurrence rule, building one release's DAG).

:func:`time_budget` raises :class:`BudgetExceededError` in the block when it runs past its seconds. It uses the
process's real-time interval timer (SIGALRM), so it works in the main thread only (elsewhere it does nothing):
the DAG processor, ``validate`` and task processes run definitions there. An outer timer (Airflow's
``dagbag_import_timeout`` uses the same one) is kept: when it is due first, the block leaves it alone; else it
is armed again, less the time spent, when the block ends.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class BudgetExceededError(TimeoutError):
    """A block ran past its time budget."""


@contextmanager
def time_budget(seconds: float, what: str) -> Iterator[None]:
    """Raise :class:`BudgetExceededError` ("``what`` took longer than N s") if the block takes over ``seconds``."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    outer_left, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    if outer_left and outer_left <= seconds:  # the outer deadline comes first: it decides
        yield
        return
    started = time.monotonic()

    def _expired(signum: int, frame: Any) -> None:
        raise BudgetExceededError(f"{what} took longer than {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left:
            left = max(outer_left - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)
