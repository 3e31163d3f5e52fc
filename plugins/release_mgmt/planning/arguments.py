"""Each planned task's operator and keyword arguments, as plain JSON values (cosmos-style): the DAG builder
then only makes operators, task groups and edges. Also the plan in words, for the preflight log, the DAG's
docs and the change request's plans (planning/words.py). No Airflow here."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from release_mgmt.planning.graph import EnvironmentPlan, ReleasePlan, TaskSpec
from release_mgmt.planning.words import plan_lines, steps_of

_OPERATORS = "release_mgmt.operators"
#: the operator of each task kind (gates name their own: the gate type's OPERATOR)
OPERATORS: dict[str, str] = {
    "preflight": f"{_OPERATORS}.entry.PreflightOperator",
    "break_glass": f"{_OPERATORS}.approval.BreakGlassOperator",
    "enter": f"{_OPERATORS}.entry.EnvironmentEntryOperator",
    "change_open": f"{_OPERATORS}.change.ChangeOpenOperator",
    "change_authorized": f"{_OPERATORS}.change.ChangeAuthorizedOperator",
    "change_close": f"{_OPERATORS}.change_close.ChangeCloseOperator",
    "lock": f"{_OPERATORS}.lock.EnvironmentLockOperator",
    "unlock": f"{_OPERATORS}.lock.EnvironmentUnlockOperator",
    "deploy": f"{_OPERATORS}.deploy.DeployOperator",
    "validate": f"{_OPERATORS}.validate.ValidateOperator",
    "rollback": f"{_OPERATORS}.rollback.RollbackOperator",
    "result": f"{_OPERATORS}.result.EnvironmentResultOperator",
    "summary": f"{_OPERATORS}.result.ReleaseSummaryOperator",
}


def _windows(plan: ReleasePlan, env: EnvironmentPlan) -> dict[str, Any]:
    return {
        "windows": [w.model_dump(mode="json") for w in plan.windows],
        "on_freeze": env.on_freeze,
        "outside_maintenance": env.outside_maintenance,
        "expected_seconds": env.expected_duration.total_seconds(),
    }


def _dicts(steps: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [s.model_dump(mode="json", by_alias=True) for s in steps]


def _step_arguments(plan: ReleasePlan, env: EnvironmentPlan, task: TaskSpec) -> dict[str, Any]:
    args: dict[str, Any] = {
        "environment": env.name,
        "component": task.component or "",
        "steps": _dicts(task.steps),
        "variables": env.variables,
        "workdir": plan.workdir,
        "records": task.records,
    }
    if task.kind != "validate":  # checks change nothing: windows bind deploys (and are noted on rollbacks)
        args |= _windows(plan, env)
    if env.change is not None:
        args["change"] = env.change
    if task.kind == "deploy":
        args |= {"probe": _dicts((task.probe,))[0] if task.probe else None, "lock": env.lock}
    if task.kind == "rollback":
        args["fallback"] = _dicts(task.fallback)
    return args


def _environment_arguments(plan: ReleasePlan, env: EnvironmentPlan, task: TaskSpec) -> dict[str, Any]:
    """The arguments of a task inside an environment's group."""
    if task.kind in ("deploy", "validate", "rollback"):
        return _step_arguments(plan, env, task)
    base: dict[str, Any] = {"environment": env.name}
    if task.kind == "enter":
        return base | _windows(plan, env)
    if task.kind == "gate":
        names = list(plan.environment_names)
        earlier = [t.task_id for e in plan.environments[: names.index(env.name)] for t in e.tasks if t.kind == "gate"]
        groups = {k: list(v) for k, v in plan.approver_groups.items()}
        return base | {"approver_groups": groups, "earlier_gates": earlier}
    if task.kind in ("lock", "unlock"):
        base["lock"] = env.lock or ""
        waits = {"timeout_seconds": env.lock_timeout.total_seconds(), "notice_seconds": env.lock_notice.total_seconds()}
        return base | (waits if task.kind == "lock" else {})
    if task.kind == "result":
        return base | {"local_task_ids": env.local_ids("result")}
    return base | _change_arguments(plan, env, task)


def _change_arguments(plan: ReleasePlan, env: EnvironmentPlan, task: TaskSpec) -> dict[str, Any]:
    change = dict(env.change or {})
    args: dict[str, Any] = {"change": change}
    if task.kind == "change_close":
        args["local_task_ids"] = env.local_ids("result", "change_close")
    if task.kind == "change_open":
        args |= {
            "description": plan.description or f"Release {plan.release}",
            "implementation_plan": "Deploy, in dependency order:\n" + steps_of(plan, env, "deploy"),
            "backout_plan": "On a failed deploy or check, each changed component is restored to its last known "
            "good version:\n" + steps_of(plan, env, "rollback"),
            "test_plan": "After each deploy:\n" + steps_of(plan, env, "validate"),
            "authorizers": list(env.authorizers),
        }
    return args


def _top_arguments(plan: ReleasePlan, task: TaskSpec) -> dict[str, Any]:
    if task.kind == "preflight":
        patterns = {k: v["pattern"] for k, v in plan.parameters.items() if v.get("pattern")}
        sources = {c.name: c.source.model_dump(mode="json", by_alias=True) for c in plan.components if c.source}
        return {"plan_lines": plan_lines(plan), "patterns": patterns} | ({"sources": sources} if sources else {})
    if task.kind == "break_glass":
        return {"approver_groups": {k: list(v) for k, v in plan.approver_groups.items()}}
    return {"tasks_by_environment": {e.name: e.local_ids("result") for e in plan.environments}}


#: the tasks that clean up and report: a task that could not start (an outage of the API server, a worker lost
#: before it ran) is tried again, 10 s, 20 s, 40 s, 80 s later, so an outage of a few minutes never leaves a
#: change open, a lock held or an outcome misreported. Deploys and checks are never retried behind the user's back.
#: An approval gate too: Airflow 3.3 fails a gate answered within seconds of parking; its retry goes on from the
#: progress it kept (operators/gate_progress.py).
RECOVERY = frozenset({"rollback", "change_close", "unlock", "result", "summary", "gate", "break_glass"})
RECOVERY_RETRIES: dict[str, Any] = {
    "retries": 4,
    "retry_delay": 10.0,
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": 120.0,
}


def _filled(task: TaskSpec, arguments: dict[str, Any]) -> TaskSpec:
    retries = RECOVERY_RETRIES if task.kind in RECOVERY else {}
    return replace(
        task, operator=task.operator or OPERATORS[task.kind], arguments={**task.arguments, **retries, **arguments}
    )


def with_arguments(plan: ReleasePlan) -> ReleasePlan:
    """The plan with every task's operator and arguments filled in."""
    envs = tuple(
        replace(env, tasks=tuple(_filled(t, _environment_arguments(plan, env, t)) for t in env.tasks))
        for env in plan.environments
    )
    glass = _filled(plan.break_glass, _top_arguments(plan, plan.break_glass)) if plan.break_glass else None
    return replace(
        plan,
        environments=envs,
        preflight=_filled(plan.preflight, _top_arguments(plan, plan.preflight)),
        summary=_filled(plan.summary, _top_arguments(plan, plan.summary)),
        break_glass=glass,
    )
