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


def selection(context: Context, components: list[str], environments: list[str]) -> run_params.RunSelection:
    """The run's versions and environments; a parameter no run may carry fails the task."""
    try:
        return run_params.select(context["params"], components, environments)
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
