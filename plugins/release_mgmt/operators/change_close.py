"""The change's end: closed with the environment's outcome and a digest of the evidence, or canceled when the
run stopped before deploying."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowSkipException

from release_mgmt.errors import ServiceNowError
from release_mgmt.operators.base import local_states, triggerer
from release_mgmt.operators.change import ChangeOperator, now_text
from release_mgmt.records.digest import canonical, digest
from release_mgmt.rules.change import CANCELED, CLOSED, IMPLEMENT, REVIEW, STOPPED, ChangeState, close_code
from release_mgmt.rules.outcomes import environment_outcome


class ChangeCloseOperator(ChangeOperator):
    """Closes the change with the environment's outcome, or cancels it when nothing was implemented."""

    def __init__(self, *, local_task_ids: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.local_task_ids = list(local_task_ids)

    def execute(self, context: Context) -> dict[str, str]:
        opened = self.opened(context)
        if opened is None:
            raise AirflowSkipException("no change was opened (dry run, or the environment did not start)")
        states = local_states(context, self.environment, self.local_task_ids)
        outcome = environment_outcome(states)
        backend = self.backend(context)
        record = backend.get(opened["sys_id"])
        number = record["number"]
        if states.get("change_authorized") != "success":
            reason = f"Canceled: the run stopped before deploying ({outcome.sentence(self.environment)})."
            if ChangeState.of(record) not in STOPPED:
                backend.transition(record["sys_id"], CANCELED, work_notes=reason)
            self.change_audit(context, "change.canceled", "canceled", number, reason=reason)
            return {"number": number, "close_code": "", "state": str(int(CANCELED))}
        code = close_code(outcome.status, self._retried(context))
        notes = self._close_notes(context, outcome.sentence(self.environment))
        try:
            self._write_queued_notes(context, backend, record)
            if ChangeState.of(record) == IMPLEMENT:
                backend.transition(record["sys_id"], REVIEW, work_end=now_text())
            backend.close(record["sys_id"], code, notes)
        except ServiceNowError as exc:  # tried again by the task's retries (planning/arguments.py, RECOVERY)
            raise ServiceNowError(f"change {number}: could not close: {exc}", exc.status, exc.excerpt) from exc
        self.change_audit(context, "change.closed", code, number, close_notes=notes)
        return {"number": number, "close_code": code, "state": str(int(CLOSED))}

    def _write_queued_notes(self, context: Context, backend: Any, record: dict[str, str]) -> None:
        """The work notes step tasks could not write when they ran (operators/step.py), in task order, marked as
        written late; a retry of this task writes none twice (the change's journal, as just read, is checked)."""
        from release_mgmt.operators.step import QUEUED_NOTES

        sys_id, journal = record["sys_id"], str(record.get("work_notes", ""))
        for task in self.local_task_ids:
            if not task.startswith(("deploy_", "validate_", "rollback_")):
                continue
            for note in context["ti"].xcom_pull(task_ids=f"{self.environment}.{task}", key=QUEUED_NOTES) or []:
                if note not in journal:
                    backend.note(sys_id, f"{note} [written late by change_close: the change system was away]")

    def _close_notes(self, context: Context, sentence: str) -> str:
        """The outcome and the evidence for this environment, with a SHA-256 over that evidence."""
        ti = context["ti"]
        approvals = {}
        for task in (t for t in self.local_task_ids if t.startswith("gate_")):
            decision = ti.xcom_pull(task_ids=f"{self.environment}.{task}")
            if isinstance(decision, dict):
                approvals[task.removeprefix("gate_")] = decision.get("approvers", [])
        versions = self.versions(context)
        summary = {
            "release": self.release,
            "environment": self.environment,
            "run_id": context["run_id"],
            "outcome": sentence,
            "versions": versions,
            "approvals": approvals,
            "triggered_by": triggerer(context),
        }
        return (
            f"{sentence}.\nVersions: {', '.join(f'{c} {v}' for c, v in versions.items())}.\n"
            f"Approvals: {canonical(approvals)}.\nTriggered by {summary['triggered_by'] or 'the scheduler'}"
            f", Airflow run {context['run_id']}.\nEvidence (sha256 of {canonical(summary)}): {digest(summary)}\n"
            f"Full report: python -m release_mgmt audit {context['dag'].dag_id} {context['run_id']}"
        )

    def _retried(self, context: Context) -> bool:
        """Whether a validation passed only after a retry."""
        tasks = [f"{self.environment}.{t}" for t in self.local_task_ids if t.startswith("validate_")]
        return any((context["ti"].xcom_pull(task_ids=t, key="attempt") or 1) > 1 for t in tasks)
