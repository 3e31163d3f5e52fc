"""The environment's result and the run's summary: each fails when what it sums up failed, so no later
environment starts and the run says why."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from release_mgmt.change_service.service_token import TaskIdentity
from release_mgmt.notify import routes
from release_mgmt.notify.outbox import settled_ledger
from release_mgmt.operators.base import ReleaseOperator, local_states, selection
from release_mgmt.rules.outcomes import EnvironmentOutcome, environment_outcome


def reasons(context: Context, environment: str, outcome: EnvironmentOutcome) -> dict[str, str]:
    """Why the failed gates of ``environment`` failed, as the gates recorded it (who rejected and why, or the
    timeout), keyed by local task id."""
    found = {}
    for task in (t for t in outcome.failed_tasks if t.startswith("gate_")):
        decision = context["ti"].xcom_pull(task_ids=f"{environment}.{task}", key="decision")
        if isinstance(decision, dict) and decision.get("reason"):
            found[task] = str(decision["reason"])
    return found


class EnvironmentResultOperator(ReleaseOperator):
    """Fails when its environment failed (after rollback), so the next environment never starts."""

    def __init__(self, *, environment: str, local_task_ids: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.environment = environment
        self.local_task_ids = list(local_task_ids)

    def execute(self, context: Context) -> dict[str, Any]:
        selected = self.environment in selection(context, self.components, self.environments).environments
        outcome = environment_outcome(local_states(context, self.environment, self.local_task_ids), selected)
        sentence = outcome.sentence(self.environment, reasons(context, self.environment, outcome))
        self._audit(
            context,
            "environment.finished",
            outcome.status,
            environment=self.environment,
            details={
                "failed": list(outcome.failed_tasks),
                "rolled_back": list(outcome.rolled_back),
                "rollback_failed": list(outcome.rollback_failed),
            },
        )
        if outcome.status in ("not_selected", "not_started"):
            raise AirflowSkipException(sentence)
        if outcome.is_failure:
            raise AirflowFailException(sentence)
        self.log.info("%s", sentence)
        return {"status": outcome.status}


#: how long the summary waits for notifications still being tried (the outbox gives up on one within a minute)
SETTLE_SECONDS = 60.0


class ReleaseSummaryOperator(ReleaseOperator):
    """The last task: one line per environment, and the run fails when any environment failed."""

    def __init__(self, *, tasks_by_environment: dict[str, list[str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tasks_by_environment = {k: list(v) for k, v in tasks_by_environment.items()}

    def execute(self, context: Context) -> dict[str, str]:
        chosen = selection(context, self.components, self.environments)
        statuses: dict[str, str] = {}
        lines = []
        failed = False
        for env in self.environments:
            states = local_states(context, env, self.tasks_by_environment[env])
            outcome = environment_outcome(states, env in chosen.environments)
            statuses[env] = outcome.status
            lines.append(outcome.sentence(env, reasons(context, env, outcome)))
            failed = failed or outcome.is_failure
        verdict = "FAILED" if failed else "SUCCEEDED"
        self.log.info("release %s %s", self.release, verdict)
        for line in lines:
            self.log.info("  %s", line)
        self._notifications(context)
        self._audit(context, "run.finished", verdict.lower(), details={"environments": statuses, "summary": lines})
        if failed:
            raise AirflowFailException(f"release {self.release} FAILED: " + " | ".join(lines))
        return statuses

    def _notifications(self, context: Context) -> None:
        """How this run's notifications went, as audit lines (the outbox sends them off the deploy path; this last
        task waits a bounded time for the ones still being tried)."""
        if self.release not in routes.ROUTES:
            return
        identity = TaskIdentity.from_context(context)
        try:
            ledger = settled_ledger(identity, SETTLE_SECONDS)
        except Exception as exc:  # noqa: BLE001 - never fails the run
            self.log.warning("could not read how this run's notifications went: %s", exc)
            return
        for row in ledger:
            fields = {k: row[k] for k in ("channel", "recipient", "subject", "attempts", "error", "key")}
            outcome = {"sent": "sent", "failed": "failed"}.get(row["status"], "pending")
            self._audit(
                context,
                f"notify.{outcome}",
                outcome,
                environment=row["environment"],
                details={"notification": row["event"], **fields},
            )
