"""The approval gate at run time, built on Airflow's human-in-the-loop operator.

The task parks in ``awaiting_input`` (no worker, no pool slot) with one request: Approve or Reject,
with a comment. Each answer resumes the task briefly: :func:`judge` decides what it means, the
decision is written as an audit line, and unless the gate is decided the request is opened again
(Airflow's upsert clears the answer) and the task parks once more, with the time that is left.
Votes are kept in the task's XCom, so they survive between answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Context, Param
from airflow.sdk.exceptions import AirflowFailException, TaskAwaitingInput
from airflow.sdk.execution_time.hitl import upsert_hitl_detail

from release_mgmt.definition.durations import format_duration
from release_mgmt.gates.approval import APPROVE, REJECT, ApprovalGate
from release_mgmt.notify.messages import airflow_url
from release_mgmt.operators.base import settled_versions
from release_mgmt.operators.gate_progress import _FRESH, _WAITING, DEADLINE, REFUSED, VOTES, GateProgressMixin
from release_mgmt.operators.train_claim import gate_waiver
from release_mgmt.planning import version_param
from release_mgmt.records import audit
from release_mgmt.rules.approval import Vote, judge, missing


class ApprovalGateOperator(GateProgressMixin, HITLOperator):
    """Waits for ``min_approvals`` distinct eligible approvers (and each group's own quorum)."""

    ui_color = "#fff4d6"

    def __init__(
        self,
        *,
        release: str,
        environment: str,
        gate: dict[str, Any],
        approver_groups: dict[str, list[str]],
        components: list[str],
        environments: list[str],
        earlier_gates: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        model = ApprovalGate.model_validate(gate)
        eligible = model.eligible(approver_groups)
        kwargs.setdefault("subject", model.subject or f"Approve {release} into {environment}?")
        kwargs.pop("params", None)  # the DAG's params arrive here; the request's own form is the comment
        super().__init__(
            options=[APPROVE, REJECT],
            body=_body(release, environment, components, model),
            params={  # optional: an approval needs no comment, a reject does (the gate refuses one without)
                "comment": Param(None, type=["null", "string"], title="Comment", description="Required to reject.")
            },
            assigned_users=[{"id": user, "name": user} for user in eligible],
            response_timeout=model.timeout,
            **kwargs,
        )
        self.release = release
        self.environment = environment
        self.gate = gate
        self.approver_groups = {k: list(v) for k, v in approver_groups.items()}
        self.components = list(components)
        self.environments = list(environments)
        self.earlier_gates = list(earlier_gates)

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Subject and body may use ``airflow_url`` (the API server's [api] base_url) for links."""
        extras = {"airflow_url": airflow_url(), "versions": _versions(context, self.components)}
        super().render_template_fields(cast("Any", {**dict(context), **extras}), jinja_env)

    @property
    def model(self) -> ApprovalGate:
        return ApprovalGate.model_validate(self.gate)

    def _audit(self, context: Context, event: str, outcome: str, actor: str = "", **details: Any) -> None:
        audit.emit(
            self.log,
            event,
            release=self.release,
            run_id=context["run_id"],
            environment=self.environment,
            outcome=outcome,
            actor=actor,
            details=details,
        )

    def execute(self, context: Context) -> Any:
        gate = self.model
        eligible = gate.eligible(self.approver_groups)
        self.log.info(
            "approval gate %s for %s in %s: %d of %s; timeout %s, then %s",
            gate.name,
            self.release,
            self.environment,
            gate.min_approvals,
            ", ".join(eligible),
            format_duration(gate.timeout),
            gate.on_timeout,
        )
        if context["params"].get("dry_run"):
            self._audit(context, "gate.dry_run", "skipped", eligible=eligible)
            return {"decision": "dry_run", "approvers": []}
        waiver = (
            None
            if isinstance(self, BreakGlassOperator)
            else gate_waiver(context, self.release, self.environment, self.components)
        )
        if waiver is not None:  # the train's own gates stood for this one (member_gates: waive)
            self._audit(
                context, "gate.waived", "train", gate=gate.name, train=waiver["train"], run=waiver["train_run_id"]
            )
            return {
                "decision": "waived",
                "approvers": [],
                "train": waiver["train"],
                "train_run_id": waiver["train_run_id"],
            }
        resumed = self._resume(context)
        if resumed is not _FRESH:
            return resumed
        deadline = datetime.now(UTC) + gate.timeout
        ti = context["ti"]
        ti.xcom_push(key=DEADLINE, value=deadline.isoformat())
        ti.xcom_push(key=VOTES, value=[])
        ti.xcom_push(key=REFUSED, value=[])
        self._keep(context, [], [])
        self._audit(
            context,
            "gate.requested",
            "waiting",
            gate=gate.name,
            eligible=eligible,
            min_approvals=gate.min_approvals,
            group_quorums=[q.model_dump() for q in gate.group_quorums],
            timeout=format_duration(gate.timeout),
            on_timeout=gate.on_timeout,
            triggered_by=_triggerer(context),
            versions=_versions(context, self.components),
        )
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        ti = context["ti"]
        gate = self.model
        approvals: list[dict[str, Any]] = list(ti.xcom_pull(task_ids=self.task_id, key=VOTES) or [])
        if "error" in event or event.get("timedout"):
            return self._timeout(context, approvals)
        who = event.get("responded_by_user") or {}
        vote = Vote(
            user=str(who.get("id") or who.get("name") or ""),
            decision=(event.get("chosen_options") or [""])[0],
            comment=str((event.get("params_input") or {}).get("comment") or ""),
            at=_iso(event.get("responded_at")),
        )
        verdict = judge(
            gate,
            vote,
            groups=self.approver_groups,
            triggerer=_triggerer(context),
            approvals=[a["user"] for a in approvals],
            earlier_approvers=self._earlier_approvers(ti),
        )
        record = {"user": vote.user, "decision": vote.decision, "comment": vote.comment, "at": vote.at}
        if verdict.kind == "refused":
            refused = [*(ti.xcom_pull(task_ids=self.task_id, key=REFUSED) or []), {**record, "reason": verdict.reason}]
            ti.xcom_push(key=REFUSED, value=refused)
            self._keep(context, approvals, refused)
            self._audit(
                context,
                "gate.vote_refused",
                "refused",
                actor=vote.user,
                gate=gate.name,
                decision=vote.decision,
                comment=vote.comment,
                reason=verdict.reason,
            )
            return self._wait_again(context, approvals)
        self._audit(
            context,
            "gate.vote",
            vote.decision.lower(),
            actor=vote.user,
            gate=gate.name,
            comment=vote.comment,
            counts=verdict.kind in {"counted", "approved"},
        )
        if verdict.kind == "rejected":
            return self._decide(context, "rejected", approvals, verdict.reason, actor=vote.user, comment=vote.comment)
        approvals.append(record)
        ti.xcom_push(key=VOTES, value=approvals)
        self._keep(context, approvals, ti.xcom_pull(task_ids=self.task_id, key=REFUSED) or [])
        if verdict.kind == "approved":
            return self._decide(context, "approved", approvals, verdict.reason, actor=vote.user)
        self.log.info("%s", verdict.reason)
        return self._wait_again(context, approvals)

    def _earlier_approvers(self, ti: Any) -> list[str]:
        names: list[str] = []
        for task_id in self.earlier_gates:
            decision = ti.xcom_pull(task_ids=task_id) or {}
            names.extend(decision.get("approvers", []) if isinstance(decision, dict) else [])
        return names

    def _wait_again(self, context: Context, approvals: list[dict[str, Any]]) -> Any:
        if getattr(self, "_replaying", False):
            return _WAITING
        ti = context["ti"]
        deadline = datetime.fromisoformat(ti.xcom_pull(task_ids=self.task_id, key=DEADLINE))
        left = deadline - datetime.now(UTC)
        if left <= timedelta(0):
            return self._timeout(context, approvals)
        upsert_hitl_detail(  # an answered request is cleared and opened again
            ti_id=context["task_instance"].id,
            options=self.options,
            subject=self.subject,
            body=self.body,
            defaults=self.defaults,
            multiple=self.multiple,
            params=self.serialized_params,
            assigned_users=self.assigned_users,
        )
        self.log.info("waiting for more approvals (%s left)", str(left).split(".")[0])
        raise TaskAwaitingInput(method_name="execute_complete", timeout=left)

    def _timeout(self, context: Context, approvals: list[dict[str, Any]]) -> Any:
        gate = self.model
        lacks = missing(gate, [a["user"] for a in approvals], self.approver_groups)
        reason = (
            f"timed out after {format_duration(gate.timeout)} with {len(approvals)} approval(s) "
            f"(still needed: {', '.join(lacks)}); on_timeout: {gate.on_timeout}"
        )
        self._audit(context, "gate.timeout", gate.on_timeout, gate=gate.name, reason=reason)
        return self._decide(
            context,
            "approved" if gate.on_timeout == "approve" else "rejected",
            approvals,
            reason,
            actor="",
            timeout=True,
        )

    def _decide(
        self,
        context: Context,
        decision: str,
        approvals: list[dict[str, Any]],
        reason: str,
        *,
        actor: str,
        comment: str = "",
        timeout: bool = False,
    ) -> dict[str, Any]:
        refused = context["ti"].xcom_pull(task_ids=self.task_id, key=REFUSED) or []
        result = {
            "decision": decision,
            "gate": self.model.name,
            "environment": self.environment,
            "approvers": [a["user"] for a in approvals],
            "votes": approvals,
            "refused": refused,
            "rejected_by": actor if decision == "rejected" and not timeout else "",
            "comment": comment,
            "timeout": timeout,
            "reason": reason,
        }
        self._keep(context, [*approvals], list(refused), decided=decision)
        self._audit(context, "gate.decision", decision, actor=actor, **result)
        if decision == "rejected":
            context["ti"].xcom_push(key="decision", value=result)
            raise AirflowFailException(f"approval gate {self.model.name} for {self.environment}: {reason}")
        self.log.info("approved: %s", reason)
        return result


class BreakGlassOperator(ApprovalGateOperator):
    """Once per emergency run (trigger parameter ``emergency_change``), asks the break-glass approvers
    to let it deploy during freezes. A normal run passes through at once; freezes hold for it."""

    ui_color = "#ffd7d7"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "subject",
            f"EMERGENCY: let {kwargs['release']} deploy during freezes (change {{{{ params.emergency_change }}}})?",
        )
        super().__init__(environment="every environment", **kwargs)

    def execute(self, context: Context) -> Any:
        change = str(context["params"].get("emergency_change") or "").strip()
        if not change:
            self._audit(context, "break_glass.not_requested", "skipped")
            return {"decision": "not_emergency", "approvers": []}
        self._audit(context, "break_glass.requested", "waiting", change=change)
        return super().execute(context)


def _triggerer(context: Context) -> str:
    return str(context["dag_run"].triggering_user_name or "")


def _versions(context: Context, components: list[str]) -> dict[str, str]:
    settled = settled_versions(context)
    return {c: settled.get(c) or str(context["params"].get(version_param(c)) or "") for c in components}


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value or "")


def _body(release: str, environment: str, components: list[str], gate: ApprovalGate) -> str:
    lines = "\n".join(f"- {c}: {{{{ versions[{c!r}] }}}}" for c in components)
    quorum = f"{gate.min_approvals} distinct approver(s)" + "".join(
        f", {q.min_approvals} from {q.group}" for q in gate.group_quorums
    )
    sod = " The user who triggered the run cannot approve it." if gate.separation_of_duties else ""
    run = "{{ airflow_url }}/dags/{{ dag.dag_id }}/runs/{{ run_id }}"
    console = "{{ airflow_url }}/release-console/runs/{{ dag.dag_id }}/{{ run_id }}"
    return (
        f"Release **{release}** into **{environment}**, run `{{{{ run_id }}}}` "
        f"(triggered by {{{{ dag_run.triggering_user_name }}}}): [open the run](<{run}>) · "
        f"[what runs where, and the evidence so far](<{console}>)\n\nVersions:\n{lines}\n\n"
        f"Needs {quorum}; waits {format_duration(gate.timeout)}, then {gate.on_timeout}s.{sod} "
        f"A reject needs a comment.\n\n{gate.instructions}"
    ).strip()
