"""Plan -> Airflow DAG. The only module that creates operators; one builder per task kind."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from airflow.sdk import DAG, BaseOperator, Param, TaskGroup, get_parsing_context
from airflow.sdk.exceptions import AirflowFailException

from release_mgmt.dag.timetable import MaintenanceWindowTimetable
from release_mgmt.definition.loader import LoadedDefinition, load_paths
from release_mgmt.definition.models import NAME_PATTERN, VERSION_PATTERN
from release_mgmt.definition.yaml_io import parse
from release_mgmt.errors import DefinitionError
from release_mgmt.operators.approval import ApprovalGateOperator, BreakGlassOperator
from release_mgmt.operators.base import (
    DeployOperator,
    EnvironmentEntryOperator,
    EnvironmentResultOperator,
    PreflightOperator,
    ReleaseSummaryOperator,
    RollbackOperator,
    ValidateOperator,
)
from release_mgmt.operators.change import ChangeAuthorizedOperator, ChangeCloseOperator, ChangeOpenOperator
from release_mgmt.operators.lock import EnvironmentLockOperator, EnvironmentUnlockOperator
from release_mgmt.planning import EnvironmentPlan, ReleasePlan, TaskSpec, dag_id_for, plan_release, version_param
from release_mgmt.records.deployment import record_asset

START_DATE = datetime(2024, 1, 1, tzinfo=UTC)  # fixed: the same YAML must give the same DAG
INVALID_TAG = "invalid-definition"


def trigger_params(plan: ReleasePlan) -> dict[str, Param]:
    """The manual trigger form: a version per component, the environments, dry run, extra fields."""
    envs = list(plan.environment_names)
    params: dict[str, Param] = {}
    for comp in plan.components:
        params[version_param(comp.name)] = Param(
            comp.version,
            type="string",
            pattern=VERSION_PATTERN,
            title=f"Version of {comp.name}",
            description=comp.description or f"The version of {comp.name} to deploy.",
        )
    params["environments"] = Param(
        envs,
        type="array",
        items={"type": "string", "enum": envs},
        examples=envs,
        minItems=1,
        title="Environments",
        description=f"Consecutive environments of the promotion order {' -> '.join(envs)}. A run starting "
        "after the first may only deploy versions the environment before it already runs.",
    )
    if plan.break_glass is not None:
        params["emergency_change"] = Param(
            "",
            type="string",
            pattern=r"^[A-Za-z0-9_.-]{0,40}$",
            title="Emergency change",
            description="Change number of an emergency change: the run then asks the break-glass approvers to "
            "deploy during freezes. Leave empty for a normal run.",
        )
    params["dry_run"] = Param(
        False, type="boolean", title="Dry run", description="Plan and log what would be done; change nothing."
    )
    for key, spec in plan.parameters.items():
        schema: dict[str, Any] = {"type": spec["type"]}
        if spec["enum"]:
            schema["enum"] = list(spec["enum"])
        if spec.get("pattern"):
            schema["pattern"] = spec["pattern"]
        params[key] = Param(spec["default"], description=spec["description"] or None, **schema)
    return params


def plan_lines(plan: ReleasePlan) -> list[str]:
    """The plan in words, one line per task, for the preflight log and the DAG docs."""
    lines = []
    for env in plan.environments:
        for task in env.tasks:
            if task.kind in ("deploy", "validate", "rollback"):
                what = "; ".join(s.describe() for s in task.steps)
                lines.append(f"{task.task_id}: {what}")
    return lines


def _doc_md(plan: ReleasePlan) -> str:
    rows = "\n".join(f"- `{line.split(': ', 1)[0]}`: {line.split(': ', 1)[1]}" for line in plan_lines(plan))
    comps = ", ".join(f"{c.name} {c.version}" for c in plan.components)
    return (
        f"### Release {plan.release}\n\n{plan.description}\n\n"
        f"- definition: `{plan.source}`\n- owner: {plan.owner} {plan.team}\n"
        f"- promotion order: {' → '.join(plan.environment_names)}\n- default versions: {comps}\n\n"
        f"#### Steps\n{rows}\n"
    )


Builder = Callable[[ReleasePlan, TaskSpec, dict[str, Any]], BaseOperator]


def _dicts(steps: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [s.model_dump(mode="json", by_alias=True) for s in steps]


def _build_step(plan: ReleasePlan, task: TaskSpec, common: dict[str, Any]) -> BaseOperator:
    env = next(e for e in plan.environments if e.name == task.environment)
    args: dict[str, Any] = {
        "environment": env.name,
        "component": task.component or "",
        "steps": _dicts(task.steps),
        "variables": env.variables,
        "workdir": plan.workdir,
        "records": task.records,
        **common,
    }
    if task.kind != "validate":  # checks change nothing: windows bind deploys (and are noted on rollbacks)
        args |= _window_args(plan, env)
    if env.change_connection:
        args["change_connection"] = env.change_connection
    if task.kind == "deploy":
        return DeployOperator(probe=_dicts((task.probe,))[0] if task.probe else None, lock=env.lock, **args)
    if task.kind == "validate":
        return ValidateOperator(**args)
    return RollbackOperator(fallback=_dicts(task.fallback), **args)


def _window_args(plan: ReleasePlan, env: EnvironmentPlan) -> dict[str, Any]:
    return {
        "windows": [w.model_dump(mode="json") for w in plan.windows],
        "on_freeze": env.on_freeze,
        "outside_maintenance": env.outside_maintenance,
        "expected_seconds": env.expected_duration.total_seconds(),
    }


def _build_enter(plan: ReleasePlan, task: TaskSpec, common: dict[str, Any]) -> BaseOperator:
    env = next(e for e in plan.environments if e.name == task.environment)
    return EnvironmentEntryOperator(environment=env.name, **_window_args(plan, env), **common)


def _build_gate(plan: ReleasePlan, task: TaskSpec, common: dict[str, Any]) -> BaseOperator:
    env_names = list(plan.environment_names)
    earlier = [
        t.task_id
        for e in plan.environments[: env_names.index(task.environment or "")]
        for t in e.tasks
        if t.kind == "gate"
    ]
    return ApprovalGateOperator(
        environment=task.environment or "",
        gate=task.gate.model_dump(mode="json"),
        approver_groups={k: list(v) for k, v in plan.approver_groups.items()},
        earlier_gates=earlier,
        **common,
    )


def _build_break_glass(plan: ReleasePlan, task: TaskSpec, common: dict[str, Any]) -> BaseOperator:
    return BreakGlassOperator(
        gate=task.gate.model_dump(mode="json"),
        approver_groups={k: list(v) for k, v in plan.approver_groups.items()},
        **common,
    )


def _change_args(plan: ReleasePlan, task: TaskSpec) -> dict[str, Any]:
    return {"environment": task.environment or "", "change": task.gate.model_dump(mode="json")}


def _build_change_open(plan: ReleasePlan, task: TaskSpec, common: dict[str, Any]) -> BaseOperator:
    env = next(e for e in plan.environments if e.name == task.environment)

    def steps_of(kind: str) -> str:
        lines = [
            f"- {t.component}: " + "; ".join(s.describe() for s in t.steps)
            for t in env.tasks
            if t.kind == kind and t.steps
        ]
        return "\n".join(lines) or "- none"

    return ChangeOpenOperator(
        description=plan.description or f"Release {plan.release}",
        implementation_plan="Deploy, in dependency order:\n" + steps_of("deploy"),
        backout_plan="On a failed deploy or check, each changed component is restored to its last known good "
        "version:\n" + steps_of("rollback"),
        test_plan="After each deploy:\n" + steps_of("validate"),
        authorizers=task.gate.authorizers.names(plan.approver_groups, task.gate.assignment_group),
        **_change_args(plan, task),
        **common,
    )


def _build_change_authorized(plan: ReleasePlan, task: TaskSpec, common: dict[str, Any]) -> BaseOperator:
    return ChangeAuthorizedOperator(**_change_args(plan, task), **common)


def _build_change_close(plan: ReleasePlan, task: TaskSpec, common: dict[str, Any]) -> BaseOperator:
    env = next(e for e in plan.environments if e.name == task.environment)
    local = env.local_ids("result", "change_close")
    return ChangeCloseOperator(local_task_ids=local, **_change_args(plan, task), **common)


def _build_lock(plan: ReleasePlan, task: TaskSpec, common: dict[str, Any]) -> BaseOperator:
    env = next(e for e in plan.environments if e.name == task.environment)
    return EnvironmentLockOperator(
        environment=env.name, lock=env.lock or "", timeout_seconds=env.lock_timeout.total_seconds(), **common
    )


def _build_unlock(plan: ReleasePlan, task: TaskSpec, common: dict[str, Any]) -> BaseOperator:
    env = next(e for e in plan.environments if e.name == task.environment)
    return EnvironmentUnlockOperator(environment=env.name, lock=env.lock or "", **common)


def _build_result(plan: ReleasePlan, task: TaskSpec, common: dict[str, Any]) -> BaseOperator:
    env = next(e for e in plan.environments if e.name == task.environment)
    local = env.local_ids("result")
    return EnvironmentResultOperator(environment=env.name, local_task_ids=local, **common)


def _build_preflight(plan: ReleasePlan, task: TaskSpec, common: dict[str, Any]) -> BaseOperator:
    inlets = [record_asset(plan.release, e.name, c.name) for e in plan.environments for c in plan.components]
    patterns = {k: v["pattern"] for k, v in plan.parameters.items() if v.get("pattern")}
    return PreflightOperator(plan_lines=plan_lines(plan), patterns=patterns, inlets=inlets, **common)


def _build_summary(plan: ReleasePlan, task: TaskSpec, common: dict[str, Any]) -> BaseOperator:
    by_env = {e.name: e.local_ids("result") for e in plan.environments}
    return ReleaseSummaryOperator(tasks_by_environment=by_env, **common)


BUILDERS: dict[str, Builder] = {
    "preflight": _build_preflight,
    "break_glass": _build_break_glass,
    "enter": _build_enter,
    "change_open": _build_change_open,
    "change_authorized": _build_change_authorized,
    "change_close": _build_change_close,
    "gate": _build_gate,
    "lock": _build_lock,
    "unlock": _build_unlock,
    "deploy": _build_step,
    "validate": _build_step,
    "rollback": _build_step,
    "result": _build_result,
    "summary": _build_summary,
}


def _schedule(plan: ReleasePlan) -> MaintenanceWindowTimetable | None:
    if plan.schedule_environment is None:
        return None
    windows = [w.model_dump(mode="json") for w in plan.windows]
    return MaintenanceWindowTimetable(windows, plan.schedule_environment, plan.release)


def build_dag(plan: ReleasePlan) -> DAG:
    """The Airflow DAG of one plan."""
    tags = ["release"] + ([f"team:{plan.team}"] if plan.team else [])
    dag = DAG(
        dag_id=plan.dag_id,
        description=(plan.description.strip().splitlines() or [f"Release {plan.release}"])[0][:200],
        schedule=_schedule(plan),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=plan.max_active_runs,
        tags=tags,
        params=trigger_params(plan),
        doc_md=_doc_md(plan),
        default_args={"owner": plan.owner, "retries": 0},
        template_undefined=jinja2.StrictUndefined,
    )
    common = {
        "release": plan.release,
        "components": [c.name for c in plan.components],
        "environments": list(plan.environment_names),
    }
    made: dict[str, BaseOperator] = {}
    with dag:
        made["preflight"] = _make(plan, plan.preflight, common)
        if plan.break_glass is not None:
            made["break_glass"] = _make(plan, plan.break_glass, common)
        for env in plan.environments:
            with TaskGroup(group_id=env.name, tooltip=env.description or f"Environment {env.name}"):
                for task in env.tasks:
                    made[task.task_id] = _make(plan, task, common)
        made["summary"] = _make(plan, plan.summary, common)
    for task in plan.tasks():
        for up in task.upstream:
            made[up] >> made[task.task_id]
    return dag


def _make(plan: ReleasePlan, task: TaskSpec, common: dict[str, Any]) -> BaseOperator:
    return BUILDERS[task.kind](plan, task, {"task_id": task.local_id, "trigger_rule": task.trigger_rule, **common})


class DefinitionErrorOperator(BaseOperator):
    """Stands in a broken definition's DAG: running it fails with the definition's errors."""

    ui_color = "#ffd7d7"

    def __init__(self, *, errors: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.errors = list(errors)

    def execute(self, context: Any) -> None:
        for line in self.errors:
            self.log.error("%s", line)
        raise AirflowFailException("invalid release definition:\n" + "\n".join(self.errors))


def broken_dag_id(path: Path) -> str:
    """The DAG id a broken file would have had: from its ``name`` when readable, else its file name."""
    try:
        data, _ = parse(path.read_text(encoding="utf-8"))
        name = data.get("name") if isinstance(data, dict) else None
    except Exception:  # noqa: BLE001 - any unreadable file falls back to the file name
        name = None
    if not (isinstance(name, str) and re.fullmatch(NAME_PATTERN, name)):
        name = _safe_stem(path)
    return dag_id_for(name)


def build_broken_dag(error: DefinitionError, dag_id: str) -> DAG:
    """A visible, unrunnable DAG carrying a broken definition's errors in its description and docs."""
    errors = error.lines()
    dag = DAG(
        dag_id=dag_id,
        description=f"INVALID DEFINITION {error.file}: {error.problems[0].message}"[:200],
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        tags=["release", INVALID_TAG],
        doc_md="### Invalid release definition\n\nFix these problems in the file:\n\n"
        + "\n".join(f"- `{line}`" for line in errors)
        + "\n\nThen run `python -m release_mgmt validate`.",
        is_paused_upon_creation=True,
    )
    with dag:
        DefinitionErrorOperator(task_id="definition_error", errors=errors)
    return dag


def build_release_dags(releases_dir: Path, display_root: Path | None = None, only: str | None = None) -> dict[str, DAG]:
    """Every release DAG of a folder, broken definitions included as error DAGs.

    ``only`` (default: the dag id Airflow's parsing context names, for a worker running one
    task) builds just that DAG; definitions are still all read, since names live inside them.
    """
    wanted = only if only is not None else get_parsing_context().dag_id
    report = load_paths([releases_dir], root=display_root)
    dags: dict[str, DAG] = {}
    valid_ids = {dag_id_for(item.definition.name) for item in report.loaded}
    for item in report.loaded:
        dag_id = dag_id_for(item.definition.name)
        if wanted is None or wanted == dag_id:
            dags[dag_id] = build_dag(_plan(item))
    for error in report.errors:
        path = error.path
        dag_id = broken_dag_id(path)
        if dag_id in valid_ids:  # e.g. a second file reusing a release name: never hide either
            dag_id = dag_id_for(f"invalid_{_safe_stem(path)}")
        if wanted is None or wanted == dag_id:
            dags[dag_id] = build_broken_dag(error, dag_id)
    return dags


def _plan(item: LoadedDefinition) -> ReleasePlan:
    return plan_release(item.definition, item.display, str(item.path.resolve().parent))


def _safe_stem(path: Path) -> str:
    return re.sub(r"[^a-z0-9_-]", "_", path.stem.lower()) or "unnamed"
