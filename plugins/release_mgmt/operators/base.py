"""What every release task shares: its release, components and promotion order, the run's parameters read
safely, the states of its environment's tasks, and one audit line per thing it does."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from release_mgmt.errors import ParameterError
from release_mgmt.records import audit
from release_mgmt.rules import run_params
from release_mgmt.steps import shell


def selection(
    context: Context, components: list[str], environments: list[str], sourced: Iterable[str] = ()
) -> run_params.RunSelection:
    """The run's versions (as the preflight settled them: resolved from sources or typed in) and environments;
    a parameter no run may carry fails the task. The preflight names the components whose version a source may
    give (``sourced``); later tasks read the settled versions, and those that deploy check theirs again
    (:func:`run_version`), so a task reporting on a run whose preflight failed still reports."""
    settled = settled_versions(context)
    params = {**param_values(context), **{f"version_{c}": v for c, v in settled.items()}}
    later = context["ti"].task_id != "preflight"
    try:
        return run_params.select(params, components, environments, components if later else frozenset(sourced))
    except ParameterError as exc:
        raise AirflowFailException(str(exc)) from exc


def settled_versions(context: Context) -> dict[str, str]:
    """The versions the run's preflight settled on (empty before it ran, or when it failed)."""
    if context["ti"].task_id == "preflight":
        return {}
    found = context["ti"].xcom_pull(task_ids="preflight")
    versions = found.get("versions") if isinstance(found, dict) else None
    return {str(k): str(v) for k, v in versions.items()} if isinstance(versions, dict) else {}


def run_version(context: Context, component: str) -> str:
    """The version of ``component`` this run deploys, checked (it reaches shell steps); fails the task when the
    run has none."""
    value = settled_versions(context).get(component) or context["params"].get(f"version_{component}")
    try:
        return run_params.check_version(component, value)
    except ParameterError as exc:
        raise AirflowFailException(str(exc)) from exc


def local_states(context: Context, group: str, task_ids: Iterable[str]) -> dict[str, str | None]:
    """States of ``group``'s tasks in this run, keyed by their id inside the group."""
    ti = context["ti"]
    full = [f"{group}.{t}" for t in task_ids]
    found = ti.get_task_states(dag_id=ti.dag_id, task_ids=full, run_ids=[ti.run_id]).get(ti.run_id, {})
    return {t: found.get(f"{group}.{t}") for t in task_ids}


def param_values(context: Context) -> dict[str, Any]:
    """The run's parameters as plain values (Airflow's ParamsDict resolved)."""
    return {k: context["params"][k] for k in context["params"]}


def params_env(context: Context) -> dict[str, str]:
    """The run's parameters as RELEASE_PARAM_<NAME> variables; a value no environment can hold fails the task."""
    try:
        return shell.param_env(param_values(context))
    except ParameterError as exc:
        raise AirflowFailException(str(exc)) from exc


def run_after(context: Context) -> str:
    """When this run was triggered (ISO 8601, UTC), or empty when Airflow does not say."""
    moment = getattr(context.get("dag_run"), "run_after", None)
    return moment.astimezone(UTC).isoformat() if isinstance(moment, datetime) else ""


def triggerer(context: Context) -> str:
    """Who triggered the run (empty for the scheduler)."""
    return str(context["dag_run"].triggering_user_name or "")


class ReleaseOperator(BaseOperator):
    """What every release task knows: its release, the components and the promotion order."""

    ui_color = "#e8f0fe"

    def __init__(self, *, release: str, components: list[str], environments: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.release = release
        self.components = list(components)
        self.environments = list(environments)

    def _audit(self, context: Context | Mapping[str, Any], event: str, outcome: str, **fields: Any) -> None:
        audit.emit(
            self.log,
            event,
            release=self.release,
            run_id=context["run_id"],
            outcome=outcome,
            actor=str(context["dag_run"].triggering_user_name or ""),
            **fields,
        )
