"""The rollback task: restores the last known good version when the environment failed and this run changed
the component (rules/rollback.py decides); freezes never block it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from release_mgmt.operators.base import local_states
from release_mgmt.operators.step import StepOperator
from release_mgmt.rules.outcomes import work_failed
from release_mgmt.rules.rollback import skip_reason


class RollbackOperator(StepOperator):
    """Restores the last known good version when the environment failed and this component was changed.

    With no version to restore it runs ``fallback`` (the component's ``undeploy``) or says so.
    """

    action = "rollback"
    template_fields: Sequence[str] = ("steps", "fallback")

    def __init__(self, *, fallback: list[dict[str, Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fallback = fallback or []

    def execute(self, context: Context) -> dict[str, Any]:
        dry_run = self._announce(context)
        self._skip_unless_needed(context, dry_run)
        self._note_for_rollback(context, self.environment, self.component)
        previous = self._previous_version(context)
        if previous and self.steps:
            self.log.info("restoring %s %s in %s", self.component, previous, self.environment)
            self._run_steps(context, self.steps, previous)
            return {"restored": previous}
        if self.fallback:
            self.log.info(
                "nothing to restore (no earlier deployment of %s in %s): undeploying", self.component, self.environment
            )
            self._run_steps(context, self.fallback, "")
            return {"restored": "", "undeployed": True}
        reason = (
            f"nothing to restore: no earlier deployment of {self.component} in {self.environment} is "
            "recorded and it has no undeploy step; the failed version may still be running"
        )
        self._audit(
            context, "rollback.skipped", "nothing_to_restore", **self._where(context), details={"reason": reason}
        )
        raise AirflowFailException(reason)

    def _skip_unless_needed(self, context: Context, dry_run: bool) -> None:
        work = [f"deploy_{c}" for c in self.components] + [f"validate_{c}" for c in self.components]
        states = local_states(context, self.environment, work)
        started = context["ti"].xcom_pull(task_ids=f"{self.environment}.deploy_{self.component}", key="deploy_started")
        reason = skip_reason(states, self.component, dry_run=dry_run, started=bool(started))
        if reason is not None:
            self._audit(context, "rollback.skipped", "skipped", **self._where(context), details={"reason": reason})
            raise AirflowSkipException(f"no rollback needed: {reason}")
        self.log.info(
            "rolling back %s in %s: failed tasks: %s",
            self.component,
            self.environment,
            ", ".join(work_failed(states)) or "upstream",
        )
