"""The validate task: the component's checks after its deploy; the last one records the deployment."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Context

from release_mgmt.operators.step import StepOperator


class ValidateOperator(StepOperator):
    """Runs the component's checks after its deploy; the last one records the deployment."""

    action = "validate"

    def execute(self, context: Context) -> dict[str, Any]:
        if self._announce(context):
            return self._dry_run(context, self.steps)
        context["ti"].xcom_push(key="attempt", value=context["ti"].try_number)  # a pass after a retry has issues
        self._run_steps(context, self.steps, self._previous_version(context))
        self._record(context)
        return {"version": self._version(context)}
