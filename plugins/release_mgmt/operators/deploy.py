"""The deploy task: checked against the windows again, then (with a lock) against the lock and the superseded
rule; finds the last known good version, deploys the component and, without checks, records it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from release_mgmt.errors import ParameterError, ServiceNowError
from release_mgmt.operators.base import run_after
from release_mgmt.operators.step import StepOperator
from release_mgmt.records import deployment
from release_mgmt.rules import run_params
from release_mgmt.rules.promotion import superseded
from release_mgmt.steps import STEP_ADAPTER


class DeployOperator(StepOperator):
    """Finds the last known good version, then deploys the component."""

    action = "deploy"
    template_fields: Sequence[str] = ("steps", "probe")

    def __init__(self, *, probe: dict[str, Any] | None = None, lock: str | None = None, **kwargs: Any) -> None:
        kwargs["inlets"] = [deployment.record_asset(kwargs["release"], kwargs["environment"], kwargs["component"])]
        super().__init__(**kwargs)
        self.probe = probe
        self.lock = lock

    def execute(self, context: Context, event: Any = None) -> dict[str, Any]:
        dry_run = self._announce(context)
        self._enforce_windows(context, self.environment, self.component)  # checked again after every wait
        if dry_run:
            return self._dry_run(context, self.steps)
        self._check_lock(context)
        self._check_not_superseded(context)
        previous = self._last_known_good(context)
        context["ti"].xcom_push(key="previous_version", value=previous)
        context["ti"].xcom_push(key="deploy_started", value=True)  # the target may change from here on
        self._run_steps(context, self.steps, previous)
        self._record(context)
        return {"version": self._version(context), "previous_version": previous}

    def _check_lock(self, context: Context) -> None:
        """With an environment lock, deploy only while this run holds it: a deploy cleared and run again
        after ``unlock`` takes the lock back when it is free, and fails when another run holds it."""
        if not self.lock:
            return
        from release_mgmt.operators.lock import lock_client

        try:
            held, holder = lock_client(context).ensure_held(self.lock)
        except ServiceNowError as exc:
            raise AirflowFailException(f"{self.environment}: could not check lock {self.lock}: {exc}") from exc
        if not held:
            from release_mgmt.hooks.locks import describe

            raise AirflowFailException(
                f"{self.environment}: lock {self.lock} is held by {describe(holder)}; this run no longer "
                "holds it, so it deploys nothing. Clear the environment's lock task together with this one to "
                "wait in line for it."
            )

    def _check_not_superseded(self, context: Context) -> None:
        """Where several runs of the release may be active (the environment has a lock), never deploy over
        what a run triggered after this one already deployed: that would put an older release back."""
        if not self.lock:
            return
        record = deployment.latest(context, deployment.record_asset(self.release, self.environment, self.component))
        version = self._version(context)
        if record is None or not superseded(
            record, run_id=context["run_id"], run_after=run_after(context), version=version
        ):
            return
        self._audit(
            context,
            "deploy.superseded",
            "refused",
            **self._where(context),
            details={"deployed_version": record.version, "deployed_by_run": record.run_id},
        )
        raise AirflowFailException(
            f"{self.environment}: superseded: {self.component} {record.version} from run {record.run_id}, triggered "
            f"after this run, is already deployed here; deploying {version} now would put an older "
            "release back. Trigger a new run to deploy it anyway."
        )

    def _check_drift(self, context: Context, record: deployment.DeploymentRecord) -> None:
        """Ask the target what it runs (its ``current_version`` step, when it has one): a version other than the
        record's -- a step finished after its task was killed, a change by hand -- is drift, written to the
        audit trail before anything changes. The record stays the last known good: a rollback restores it."""
        if self.probe is None:
            return
        try:
            answer = STEP_ADAPTER.validate_python(self.probe).run(self._step_context(context, "")).output
            running = run_params.check_version(self.component, answer) if answer else ""
        except Exception as exc:  # noqa: BLE001 - a probe that cannot answer leaves the record as it is
            self.log.warning("could not ask %s what it runs (%s); going by the deployment record", self.component, exc)
            return
        if running == record.version:
            return
        self.log.warning(
            "DRIFT: %s in %s runs %s, but the deployment record says %s (run %s)",
            self.component,
            self.environment,
            running or "nothing",
            record.version,
            record.run_id,
        )
        details = {"recorded": record.version, "recorded_by_run": record.run_id, "running": running}
        self._audit(context, "deployment.drift", "drift", **self._where(context), details=details)

    def _last_known_good(self, context: Context) -> str:
        """The recorded version; without a record, what ``current_version`` reports; else nothing."""
        asset = deployment.record_asset(self.release, self.environment, self.component)
        record = deployment.latest(context, asset)
        if record is not None:
            self.log.info("last known good (deployment record): %s", record.describe())
            self._check_drift(context, record)
            return record.version
        if self.probe is None:
            self.log.info("no deployment record and no current_version step: nothing to restore on failure")
            return ""
        step = STEP_ADAPTER.validate_python(self.probe)
        self.log.info("no deployment record yet; asking the target: %s", step.describe())
        answer = step.run(self._step_context(context, "")).output
        try:
            previous = run_params.check_version(self.component, answer) if answer else ""
        except ParameterError:
            self.log.warning("current_version printed %r, which is not a version; treating as unknown", answer)
            previous = ""
        self.log.info("running before this deploy: %s", previous or "nothing")
        return previous
