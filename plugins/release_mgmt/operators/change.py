"""Change requests in the release DAG: open before the gates, wait for authorization without a worker,
mark Implement when deploying starts, close with the outcome (or cancel when nothing was implemented).

Every transition writes an audit line; the change number travels in XCom (``change_open``'s return value).
A run adopts only a change that release_mgmt itself opened for this run, of the configured type: any other
change found under the run's correlation id (someone else's, pre-approved, of another type) fails the
environment, naming the change and who made it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from release_mgmt.change_service.service_token import SERVICE_PRINCIPAL, TaskIdentity
from release_mgmt.definition.durations import parse_duration
from release_mgmt.hooks.servicenow import ServiceNowChangeHook, ServiceNowError
from release_mgmt.operators.base import ReleaseOperator, local_states
from release_mgmt.reports import evidence
from release_mgmt.rules import outcomes
from release_mgmt.triggers.change import AUTHORIZED, ChangeAuthorizationTrigger

NEW, ASSESS, AUTHORIZE, SCHEDULED, IMPLEMENT, REVIEW, CLOSED, CANCELED = -5, -4, -3, -2, -1, 0, 3, 4
#: the states a change walks through, per type, from New until it waits for (or skips) authorization
TO_AUTHORIZATION = {"normal": (ASSESS, AUTHORIZE), "emergency": (AUTHORIZE,), "standard": (SCHEDULED,)}


def correlation_id(release: str, environment: str, run_id: str) -> str:
    """The same for every try of this run and environment (the change's idempotency key, at most 100 chars)."""
    key = f"release_mgmt:{release}:{environment}:{run_id}"
    return key if len(key) <= 100 else f"{key[:59]}:{hashlib.sha256(key.encode()).hexdigest()[:40]}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


class _ChangeOperator(ReleaseOperator):
    ui_color = "#e6f4ea"

    def __init__(self, *, environment: str, change: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.environment = environment
        self.change = dict(change)

    def hook(self, context: Any) -> ServiceNowChangeHook:
        """The change system's client, calling as this task (the built-in service binds its token to it)."""
        return ServiceNowChangeHook(self.change["connection"], identity=TaskIdentity.from_context(context))

    def opened(self, context: Any) -> dict[str, str] | None:
        value = context["ti"].xcom_pull(task_ids=f"{self.environment}.change_open")
        return value if isinstance(value, dict) and value.get("sys_id") else None

    def change_audit(self, context: Any, event: str, outcome: str, number: str, **details: Any) -> None:
        self._audit(context, event, outcome, environment=self.environment, change=number, details=details)


class ChangeOpenOperator(_ChangeOperator):
    """Finds or creates this run's change (never two), fills in the plans, and requests authorization."""

    def __init__(
        self,
        *,
        description: str,
        implementation_plan: str,
        backout_plan: str,
        test_plan: str,
        authorizers: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.authorizers = sorted(authorizers or [])
        self.description = description
        self.implementation_plan = implementation_plan
        self.backout_plan = backout_plan
        self.test_plan = test_plan

    def execute(self, context: Any) -> dict[str, str]:
        versions = {c: str(context["params"].get(f"version_{c}", "")) for c in self.components}
        summary = ", ".join(f"{c} {v}" for c, v in versions.items())
        if context["params"].get("dry_run"):
            self.log.info(
                "DRY RUN: would open a %s change for %s in %s (%s)",
                self.change["type"],
                self.release,
                self.environment,
                summary,
            )
            return {"sys_id": "", "number": "", "dry_run": "true"}
        key = correlation_id(self.release, self.environment, context["run_id"])
        start = datetime.now(UTC)
        requester = str(context["dag_run"].triggering_user_name or "")
        fields = {
            "type": self.change["type"],
            "short_description": f"Release {self.release} to {self.environment}: {summary}"[:160],
            "description": f"{self.description}\n\nVersions:\n"
            + "\n".join(f"- {c}: {v}" for c, v in versions.items())
            + f"\n\nAirflow run {context['run_id']} of DAG {context['dag'].dag_id}, triggered by "
            f"{context['dag_run'].triggering_user_name or 'the scheduler'}.",
            "start_date": start.strftime("%Y-%m-%d %H:%M:%S"),
            "end_date": (start + timedelta(hours=4)).strftime("%Y-%m-%d %H:%M:%S"),
            "cmdb_ci": self.change.get("cmdb_ci", ""),
            "assignment_group": self.change.get("assignment_group", ""),
            "implementation_plan": self.implementation_plan,
            "backout_plan": self.backout_plan,
            "test_plan": self.test_plan,
            # the release run, who asked, and who may authorize (the built-in service keeps them; ServiceNow
            # ignores fields its table does not have)
            "u_airflow_dag_id": context["dag"].dag_id,
            "u_airflow_run_id": context["run_id"],
            "u_requested_by": requester,
            "u_authorizers": ",".join(self.authorizers),
            "u_min_authorizations": str(self.change.get("min_authorizations", 1)),
        }
        hook = self.hook(context)
        try:
            record, created = hook.ensure(key, fields)
            if not created:
                self._check_adoptable(context, hook, record, key)
            record = self._request_authorization(hook, record)
        except ServiceNowError as exc:
            raise AirflowFailException(f"change for {self.environment}: {exc}") from exc
        self.change_audit(
            context,
            "change.opened",
            "created" if created else "found",
            record["number"],
            sys_id=record["sys_id"],
            state=int(record["state"]),
            correlation_id=key,
            type=self.change["type"],
        )
        self.log.info(
            "change %s (%s) for %s in %s", record["number"], self.change["type"], self.release, self.environment
        )
        return {"sys_id": record["sys_id"], "number": record["number"]}

    def _check_adoptable(self, context: Any, hook: ServiceNowChangeHook, record: Mapping[str, str], key: str) -> None:
        """A change found under this run's correlation id is this run's only when release_mgmt opened it (the
        same creator this task creates as), with the configured type, for this DAG run."""
        creator = SERVICE_PRINCIPAL if hook.builtin else hook.login()
        problems = []
        if record.get("sys_created_by") != creator:
            problems.append(f"it was created by {record.get('sys_created_by') or 'an unknown user'}, not {creator}")
        if record.get("type") != self.change["type"]:
            problems.append(f"it is a {record.get('type')} change, not {self.change['type']}")
        for name, own in (("u_airflow_dag_id", context["dag"].dag_id), ("u_airflow_run_id", context["run_id"])):
            if name in record and record[name] != own:
                problems.append(f"its {name} is {record[name]!r}, not {own!r}")
        if not problems:
            return
        self.change_audit(
            context,
            "change.foreign",
            "refused",
            record.get("number", ""),
            sys_id=record.get("sys_id", ""),
            created_by=record.get("sys_created_by", ""),
            type=record.get("type", ""),
            state=record.get("state", ""),
            correlation_id=key,
            problems=problems,
        )
        raise AirflowFailException(
            f"change {record.get('number')} carries this run's correlation id but was not opened by this release: "
            + "; ".join(problems)
            + f". Nothing is deployed to {self.environment}; cancel {record.get('number')} and re-run."
        )

    def _request_authorization(self, hook: ServiceNowChangeHook, record: dict[str, str]) -> dict[str, str]:
        for state in TO_AUTHORIZATION[self.change["type"]]:
            if ServiceNowChangeHook.state(record) == NEW or (
                state == AUTHORIZE and ServiceNowChangeHook.state(record) == ASSESS
            ):
                record = hook.update(record["sys_id"], {"state": state})
        return record


class ChangeAuthorizedOperator(_ChangeOperator):
    """Waits on the triggerer (no worker) until the change is authorized, then marks it Implement."""

    def execute(self, context: Any) -> dict[str, str]:
        opened = self.opened(context)
        if opened is None:
            self.log.info("DRY RUN: would wait for the change's authorization")
            return {}
        record = self._get(context, opened["sys_id"])
        state = ServiceNowChangeHook.state(record)
        if state in AUTHORIZED:
            return self._implement(context, record)
        if state in (CLOSED, CANCELED):
            self._stopped(context, record)
        timeout = parse_duration(self.change.get("authorization_timeout", "2d"))
        self.change_audit(context, "change.waiting", "waiting", record["number"], state=state, timeout=str(timeout))
        self.log.info(
            "waiting for %s to be authorized (state %s), up to %s, without a worker", record["number"], state, timeout
        )
        self.defer(
            trigger=ChangeAuthorizationTrigger(
                conn_id=self.change["connection"],
                sys_id=opened["sys_id"],
                identity=TaskIdentity.from_context(context).as_dict(),
                deadline=time.time() + timeout.total_seconds(),
                poll_seconds=parse_duration(self.change.get("poll", "30s")).total_seconds(),
            ),
            method_name="execute_complete",
        )
        return {}

    def execute_complete(self, context: Any, event: Mapping[str, Any]) -> dict[str, Any]:
        opened = self.opened(context) or {}
        if event.get("status") == "error":
            raise AirflowFailException(f"change {opened.get('number')}: {event.get('message')}")
        record = self._get(context, opened["sys_id"])
        if event.get("status") == "timeout" and ServiceNowChangeHook.state(record) not in AUTHORIZED:
            self.change_audit(context, "change.timeout", "failed", record["number"], state=record["state"])
            raise AirflowFailException(
                f"change {record['number']} was not authorized within "
                f"{self.change.get('authorization_timeout')}; nothing was deployed"
            )
        if ServiceNowChangeHook.state(record) in AUTHORIZED:
            return self._implement(context, record)
        self._stopped(context, record)
        return {}

    def _get(self, context: Any, sys_id: str) -> dict[str, str]:
        try:
            return self.hook(context).get(sys_id)
        except ServiceNowError as exc:
            raise AirflowFailException(f"change for {self.environment}: {exc}") from exc

    def _stopped(self, context: Any, record: Mapping[str, str]) -> None:
        how = "rejected" if record.get("approval") == "rejected" else "canceled or closed"
        self.change_audit(
            context,
            "change.refused",
            "failed",
            record["number"],
            state=record["state"],
            approval=record.get("approval", ""),
        )
        raise AirflowFailException(f"change {record['number']} was {how}: nothing is deployed to {self.environment}")

    def _implement(self, context: Any, record: Mapping[str, str]) -> dict[str, Any]:
        hook = self.hook(context)
        note = f"Deployment by Airflow run {context['run_id']} starts."
        try:
            if ServiceNowChangeHook.state(record) != IMPLEMENT:
                hook.update(record["sys_id"], {"state": IMPLEMENT, "work_start": _now(), "work_notes": note})
            else:
                hook.add_work_note(record["sys_id"], note)
        except ServiceNowError as exc:
            raise AirflowFailException(f"change {record['number']}: {exc}") from exc
        decisions = self._decisions(hook, record)
        self.change_audit(
            context,
            "change.implement",
            "implement",
            record["number"],
            approval=record.get("approval", ""),
            decisions=decisions,
        )
        return {
            "sys_id": record["sys_id"],
            "number": record["number"],
            "approval": record.get("approval", ""),
            "authorized_by": [d["approver"] for d in decisions if d["state"] == "approved"],
        }

    def _decisions(self, hook: ServiceNowChangeHook, record: Mapping[str, str]) -> list[dict[str, str]]:
        """Who answered the change's approval records, how, when and why (empty for a standard change)."""
        if self.change["type"] == "standard":
            return []
        try:
            rows = hook.approvals(record["sys_id"])
        except ServiceNowError as exc:
            self.log.warning("could not read the approval records of %s: %s", record["number"], exc)
            return []
        return [
            {
                "approver": str(r.get("approver", "")),
                "state": str(r.get("state", "")),
                "comments": str(r.get("comments", "")),
                "at": str(r.get("sys_updated_on", "")),
            }
            for r in rows
            if r.get("state") in ("approved", "rejected")
        ]


class ChangeCloseOperator(_ChangeOperator):
    """Closes the change with the environment's outcome, or cancels it when nothing was implemented."""

    def __init__(self, *, local_task_ids: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.local_task_ids = list(local_task_ids)

    def execute(self, context: Any) -> dict[str, str]:
        opened = self.opened(context)
        if opened is None:
            raise AirflowSkipException("no change was opened (dry run, or the environment did not start)")
        states = local_states(context, self.environment, self.local_task_ids)
        outcome = outcomes.environment_outcome(states)
        hook = self.hook(context)
        record = hook.get(opened["sys_id"])
        number = record["number"]
        if states.get("change_authorized") != "success":
            reason = f"Canceled: the run stopped before deploying ({outcome.sentence(self.environment)})."
            if ServiceNowChangeHook.state(record) not in (CLOSED, CANCELED):
                hook.update(record["sys_id"], {"state": CANCELED, "work_notes": reason})
            self.change_audit(context, "change.canceled", "canceled", number, reason=reason)
            return {"number": number, "close_code": "", "state": str(CANCELED)}
        code = {"succeeded": "successful"}.get(outcome.status, "unsuccessful")
        if code == "successful" and self._retried(context):
            code = "successful_issues"
        notes = self._close_notes(context, outcome.sentence(self.environment))
        try:
            if ServiceNowChangeHook.state(record) == IMPLEMENT:
                hook.update(record["sys_id"], {"state": REVIEW, "work_end": _now()})
            hook.update(record["sys_id"], {"state": CLOSED, "close_code": code, "close_notes": notes})
        except ServiceNowError as exc:
            raise AirflowFailException(f"change {number}: could not close: {exc}") from exc
        self.change_audit(context, "change.closed", code, number, close_notes=notes)
        return {"number": number, "close_code": code, "state": str(CLOSED)}

    def _close_notes(self, context: Any, sentence: str) -> str:
        """The outcome and the evidence for this environment, with a SHA-256 over that evidence."""
        ti = context["ti"]
        approvals = {}
        for task in (t for t in self.local_task_ids if t.startswith("gate_")):
            decision = ti.xcom_pull(task_ids=f"{self.environment}.{task}")
            if isinstance(decision, dict):
                approvals[task.removeprefix("gate_")] = decision.get("approvers", [])
        summary = {
            "release": self.release,
            "environment": self.environment,
            "run_id": context["run_id"],
            "outcome": sentence,
            "versions": {c: str(context["params"].get(f"version_{c}", "")) for c in self.components},
            "approvals": approvals,
            "triggered_by": str(context["dag_run"].triggering_user_name or ""),
        }
        digest = evidence.digest(summary)
        return (
            f"{sentence}.\nVersions: {', '.join(f'{c} {v}' for c, v in summary['versions'].items())}.\n"
            f"Approvals: {evidence.canonical(approvals)}.\nTriggered by {summary['triggered_by'] or 'the scheduler'}"
            f", Airflow run {context['run_id']}.\nEvidence (sha256 of {evidence.canonical(summary)}): {digest}\n"
            f"Full report: python -m release_mgmt audit {context['dag'].dag_id} {context['run_id']}"
        )

    def _retried(self, context: Any) -> bool:
        """Whether a validation passed only after a retry."""
        tasks = [f"{self.environment}.{t}" for t in self.local_task_ids if t.startswith("validate_")]
        return any((context["ti"].xcom_pull(task_ids=t, key="attempt") or 1) > 1 for t in tasks)
