"""Change requests in the release DAG: open before the gates, wait for authorization without a worker,
mark Implement when deploying starts, close with the outcome (or cancel when nothing was implemented).

The change system is a backend (hooks/change_backend.py) chosen by the environment's ``change`` settings;
the states are rules/change.py. Every transition writes an audit line; the change number travels in XCom
(``change_open``'s return value). A run adopts only a change that release_mgmt itself opened for this run, of
the configured type: any other change found under the run's correlation id (someone else's, pre-approved, of
another type) fails the environment, naming the change and who made it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException

from release_mgmt.change_service.service_token import TaskIdentity
from release_mgmt.definition.durations import format_duration, parse_duration
from release_mgmt.errors import ServiceNowError
from release_mgmt.operators.base import ReleaseOperator, settled_versions, triggerer
from release_mgmt.operators.versions import notes_text
from release_mgmt.planning.words import with_versions
from release_mgmt.rules.change import (
    AUTHORIZED,
    IMPLEMENT,
    STOPPED,
    ChangeState,
    correlation_id,
    next_on_the_way,
)
from release_mgmt.triggers.events import ChangeEvent

if TYPE_CHECKING:  # the HTTP client stack is imported when a task runs, never when the DAG file is parsed
    from release_mgmt.hooks.change_backend import ChangeBackend

#: how long a change task keeps trying one call while the change system is away (5xx, 429, no answer)
CALL_DEADLINE = 180.0
#: how much longer than its own deadline Airflow lets the trigger run before failing the task itself
TRIGGER_GRACE = timedelta(minutes=10)


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def found_change(
    context: Context, release: str, environment: str, backend: ChangeBackend, log: Any
) -> dict[str, str] | None:
    """This run's change in ``environment`` looked up by its correlation id, when release_mgmt created it."""
    key = correlation_id(release, environment, context["run_id"])
    try:
        record = backend.find(key)
    except ServiceNowError as exc:
        log.warning("change_open's answer is missing and the change system did not answer the look-up: %s", exc)
        raise
    if record is None:
        return None
    if record.get("sys_created_by") != backend.creator():
        log.warning("change %s carries this run's correlation id but was not opened by it", record.get("number"))
        return None
    log.warning(
        "change_open's answer is missing (its task failed after creating the change): found this run's change "
        "%s by its correlation id %s",
        record.get("number"),
        key,
    )
    return {"sys_id": record["sys_id"], "number": record["number"]}


class ChangeOperator(ReleaseOperator):
    """What the change tasks share: the environment's change settings and its backend."""

    ui_color = "#e6f4ea"

    def __init__(self, *, environment: str, change: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.environment = environment
        self.change = dict(change)

    def backend(self, context: Context) -> ChangeBackend:
        """The change system, calling as this task (the built-in service binds its token to it)."""
        from release_mgmt.hooks.change_backend import backend_for

        return backend_for(self.change, TaskIdentity.from_context(context), deadline=CALL_DEADLINE, max_wait=20)

    def opened(self, context: Context) -> dict[str, str] | None:
        """This run's change here: ``change_open``'s answer, or -- when that answer was lost (its task died after
        the change was created, or could not store its result) -- the change found by this run's correlation
        id, so no change is ever left open. None on a dry run and when no change was created."""
        value = context["ti"].xcom_pull(task_ids=f"{self.environment}.change_open")
        if isinstance(value, dict) and value.get("sys_id"):
            return value
        if context["params"].get("dry_run") or isinstance(value, dict):
            return None
        return found_change(context, self.release, self.environment, self.backend(context), self.log)

    def change_audit(self, context: Context, event: str, outcome: str, number: str, **details: Any) -> None:
        self._audit(context, event, outcome, environment=self.environment, change=number, details=details)

    def versions(self, context: Context) -> dict[str, str]:
        settled = settled_versions(context)  # resolved from sources by the preflight, or typed in the form
        return {c: settled.get(c) or str(context["params"].get(f"version_{c}") or "") for c in self.components}


class ChangeOpenOperator(ChangeOperator):
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

    def execute(self, context: Context) -> dict[str, str]:
        versions = self.versions(context)
        summary = ", ".join(f"{c} {v}" for c, v in versions.items())
        kind = self.change["type"]
        if context["params"].get("dry_run"):
            self.log.info(
                "DRY RUN: would open a %s change for %s in %s (%s)", kind, self.release, self.environment, summary
            )
            return {"sys_id": "", "number": "", "dry_run": "true"}
        key = correlation_id(self.release, self.environment, context["run_id"])
        backend = self.backend(context)
        try:
            record, created = backend.ensure(key, self._fields(context, versions, summary))
            if not created:
                self._check_adoptable(context, backend, record, key)
            for state in next_on_the_way(kind, ChangeState.of(record)):
                record = backend.transition(record["sys_id"], state)
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
            type=kind,
        )
        self.log.info("change %s (%s) for %s in %s", record["number"], kind, self.release, self.environment)
        return {"sys_id": record["sys_id"], "number": record["number"]}

    def _fields(self, context: Context, versions: Mapping[str, str], summary: str) -> dict[str, Any]:
        start = datetime.now(UTC)
        return {
            "type": self.change["type"],
            "short_description": f"Release {self.release} to {self.environment}: {summary}"[:160],
            "description": f"{self.description}\n\nVersions:\n"
            + "\n".join(f"- {c}: {v}" for c, v in versions.items())
            + f"\n\nAirflow run {context['run_id']} of DAG {context['dag'].dag_id}, triggered by "
            f"{triggerer(context) or 'the scheduler'}." + notes_text(context, self.environment),
            "start_date": start.strftime("%Y-%m-%d %H:%M:%S"),
            "end_date": (start + timedelta(hours=4)).strftime("%Y-%m-%d %H:%M:%S"),
            "cmdb_ci": self.change.get("cmdb_ci", ""),
            "assignment_group": self.change.get("assignment_group", ""),
            # the plans with this run's versions (environment and vars were filled in by the plan)
            "implementation_plan": with_versions(self.implementation_plan, versions),
            "backout_plan": with_versions(self.backout_plan, versions),
            "test_plan": with_versions(self.test_plan, versions),
            # the release run, who asked, and who may authorize (the built-in service keeps them; ServiceNow
            # ignores fields its table does not have)
            "u_airflow_dag_id": context["dag"].dag_id,
            "u_airflow_run_id": context["run_id"],
            "u_requested_by": triggerer(context),
            "u_authorizers": ",".join(self.authorizers),
            "u_min_authorizations": str(self.change.get("min_authorizations", 1)),
        }

    def _check_adoptable(self, context: Context, backend: ChangeBackend, record: Mapping[str, str], key: str) -> None:
        """A change found under this run's correlation id is this run's only when release_mgmt opened it (the
        same creator this task creates as), with the configured type, for this DAG run."""
        creator = backend.creator()
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


class ChangeAuthorizedOperator(ChangeOperator):
    """Waits on the triggerer (no worker) until the change is authorized, then marks it Implement."""

    def execute(self, context: Context) -> dict[str, Any]:
        opened = self.opened(context)
        if opened is None:
            self.log.info("DRY RUN: would wait for the change's authorization")
            return {}
        backend = self.backend(context)
        record = self._get(backend, opened["sys_id"])
        state = ChangeState.of(record)
        if state in AUTHORIZED:
            return self._implement(context, backend, record)
        if state in STOPPED:
            self._stopped(context, record)
        timeout = parse_duration(self.change.get("authorization_timeout", "2d"))
        waits = format_duration(timeout)
        self.change_audit(
            context, "change.waiting", "waiting", record["number"], state=state, timeout=waits, sys_id=record["sys_id"]
        )
        self.log.info(
            "waiting for %s to be authorized (state %s), up to %s, without a worker", record["number"], state, waits
        )
        from release_mgmt.triggers.change import ChangeAuthorizationTrigger

        self.defer(
            trigger=ChangeAuthorizationTrigger(
                change=self.change,
                sys_id=opened["sys_id"],
                deadline=time.time() + timeout.total_seconds(),
                poll_seconds=parse_duration(self.change.get("poll", "30s")).total_seconds(),
                backend=backend.name,
                identity=TaskIdentity.from_context(context).as_dict(),
            ),
            method_name="execute_complete",
            timeout=timeout + TRIGGER_GRACE,
        )
        return {}

    def execute_complete(self, context: Context, event: ChangeEvent) -> dict[str, Any]:
        opened = self.opened(context) or {}
        if event["status"] == "error":
            raise AirflowFailException(f"change {opened.get('number')}: {event['message']}")
        backend = self.backend(context)
        record = self._get(backend, opened["sys_id"])
        authorized = ChangeState.of(record) in AUTHORIZED
        if event["status"] == "timeout" and not authorized:
            number, sys_id = record["number"], record["sys_id"]
            self.change_audit(context, "change.timeout", "failed", number, state=record["state"], sys_id=sys_id)
            unreachable = f" (the change system was not answering: {event['error']})" if event.get("error") else ""
            raise AirflowFailException(
                f"change {record['number']} was not authorized within "
                f"{self.change.get('authorization_timeout')}{unreachable}; nothing was deployed"
            )
        if authorized:
            return self._implement(context, backend, record)
        self._stopped(context, record)
        return {}

    def _get(self, backend: ChangeBackend, sys_id: str) -> dict[str, str]:
        try:
            return backend.get(sys_id)
        except ServiceNowError as exc:
            raise AirflowFailException(f"change for {self.environment}: {exc}") from exc

    def _stopped(self, context: Context, record: Mapping[str, str]) -> None:
        how = "rejected" if record.get("approval") == "rejected" else "canceled or closed"
        approval = record.get("approval", "")
        self.change_audit(
            context,
            "change.refused",
            "failed",
            record["number"],
            state=record["state"],
            approval=approval,
            sys_id=record["sys_id"],
        )
        raise AirflowFailException(f"change {record['number']} was {how}: nothing is deployed to {self.environment}")

    def _implement(self, context: Context, backend: ChangeBackend, record: Mapping[str, str]) -> dict[str, Any]:
        note = f"Deployment by Airflow run {context['run_id']} starts."
        try:
            if ChangeState.of(record) != IMPLEMENT:
                backend.transition(record["sys_id"], IMPLEMENT, work_start=now_text(), work_notes=note)
            else:
                backend.note(record["sys_id"], note)
        except ServiceNowError as exc:
            raise AirflowFailException(f"change {record['number']}: {exc}") from exc
        decisions = self._decisions(backend, record)
        approval = record.get("approval", "")
        self.change_audit(
            context,
            "change.implement",
            "implement",
            record["number"],
            approval=approval,
            decisions=decisions,
            sys_id=record["sys_id"],
        )
        return {
            "sys_id": record["sys_id"],
            "number": record["number"],
            "approval": approval,
            "authorized_by": [d["approver"] for d in decisions if d["state"] == "approved"],
        }

    def _decisions(self, backend: ChangeBackend, record: Mapping[str, str]) -> list[dict[str, str]]:
        """Who answered the change's approval records, how, when and why (empty for a standard change)."""
        if self.change["type"] == "standard":
            return []
        try:
            return backend.decisions(record["sys_id"])
        except ServiceNowError as exc:
            self.log.warning("could not read the approval records of %s: %s", record["number"], exc)
            return []
