"""What every step type shares: its strict model base and the context it runs in."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class StepModel(BaseModel):
    """Base of every step type; ``type`` is the discriminator of the step union."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    type: str
    #: Keys whose values may hold Jinja templates rendered at run time.
    templated: ClassVar[tuple[str, ...]] = ()

    def describe(self) -> str:
        """One line saying what this step would do, for plans, dry runs and logs."""
        raise NotImplementedError

    def run(self, ctx: StepContext) -> StepOutcome:
        """Do the step; raise :class:`release_mgmt.errors.StepError` when it does not succeed."""
        raise NotImplementedError


class Stopper:
    """How to stop what a step has running now: a step registers a stop while its process or request runs;
    the task's ``on_kill`` calls :meth:`stop` (from a signal handler, so stops must not wait long)."""

    def __init__(self) -> None:
        self._stops: list[tuple[str, Callable[[], str]]] = []
        self._lock = threading.Lock()
        self.stopped = threading.Event()

    @contextmanager
    def while_running(self, what: str, stop: Callable[[], str]) -> Iterator[None]:
        """``stop`` (which returns how it went, in words) applies to ``what`` while the block runs."""
        entry = (what, stop)
        with self._lock:
            self._stops.append(entry)
        try:
            yield
        finally:
            with self._lock:
                self._stops.remove(entry)

    def stop(self) -> list[str]:
        """Stop everything registered; one sentence per stop (a stop that fails says so, never raises)."""
        self.stopped.set()
        with self._lock:
            stops = list(self._stops)
        said = []
        for what, stop in stops:
            try:
                said.append(f"{what}: {stop()}")
            except Exception as exc:  # noqa: BLE001 - every stop is tried and reported, whatever one does
                said.append(f"{what}: could not stop it: {type(exc).__name__}: {exc}")
        return said


@dataclass(frozen=True)
class StepContext:
    """Who and what a step acts on; steps read it, never change it."""

    release: str
    environment: str
    component: str
    version: str
    action: str
    workdir: str
    previous_version: str = ""
    log: Any = field(default_factory=lambda: logging.getLogger("release_mgmt.steps"))  # a task's logger
    #: deploy: keep what a rollback needs (e.g. the image before the change), stored at once
    remember: Callable[[str, Any], None] = field(default=lambda key, value: None)
    #: rollback: what the deploy remembered under ``key`` (None when nothing was)
    recall: Callable[[str], Any] = field(default=lambda key: None)
    #: the run's parameters as RELEASE_PARAM_<NAME> variables (steps/shell.py): how shell steps get them
    params_env: Mapping[str, str] = field(default_factory=dict)
    #: the Airflow run (RELEASE_RUN_ID; whoever triggers may choose it, so shell strings only reference it)
    run_id: str = ""
    #: what stops the running step when the task is killed (operators/step.py's on_kill)
    stopper: Stopper = field(default_factory=Stopper)

    def env_vars(self) -> dict[str, str]:
        """The RELEASE_* variables every process of a step receives (the run's parameters among them)."""
        return {
            **self.params_env,
            "RELEASE_NAME": self.release,
            "RELEASE_ENVIRONMENT": self.environment,
            "RELEASE_COMPONENT": self.component,
            "RELEASE_VERSION": self.version,
            "RELEASE_ACTION": self.action,
            "RELEASE_PREVIOUS_VERSION": self.previous_version,
            "RELEASE_RUN_ID": self.run_id,
        }


@dataclass(frozen=True)
class StepOutcome:
    """What a finished step reports: the last line it printed (a version probe's answer)."""

    output: str = ""
