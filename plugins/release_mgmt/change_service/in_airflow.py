"""The change service as Airflow's API server mounts it (the plugin's ``fastapi_apps``): Airflow's users, its
database for run states and triggering users, and the deployment's service secret."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from release_mgmt.change_service.app import create_app
from release_mgmt.change_service.callers import airflow_caller


def airflow_app() -> FastAPI:
    """The service as Airflow's API server mounts it (plugin ``fastapi_apps``): callers authenticate with
    Airflow itself or a service token, the database is ``$RELEASE_MGMT_CHANGE_DB`` (any SQLAlchemy URL) or
    a SQLite file in AIRFLOW_HOME, and a distributed deployment must set its own service secret."""
    app = create_app(None, airflow_caller)
    app.state.store_url = default_store_url
    app.state.secret_problem = _deployment_secret_problem  # checked on every call, never at plugin import
    app.state.run_state = airflow_run_state
    app.state.run_triggerer = airflow_run_triggerer
    app.state.gate_answers = airflow_gate_answers
    return app


def _deployment_secret_problem() -> str:
    """Why this deployment's service secret is unfit ('' when fine); the service serves nothing until it is."""
    from release_mgmt.change_service.service_token import ServiceSecretError, require_deployment_secret

    try:
        require_deployment_secret()
    except ServiceSecretError as exc:
        return str(exc)
    return ""


def _run_column(dag_id: str, run_id: str, column: str) -> Any:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return session.scalar(select(getattr(DagRun, column)).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))


def airflow_run_state(dag_id: str, run_id: str) -> str | None:
    """A run's state in Airflow's database (the API server can read it): tells live lock holders from dead."""
    state = _run_column(dag_id, run_id, "state")
    return None if state is None else str(getattr(state, "value", state))


def airflow_run_triggerer(dag_id: str, run_id: str) -> str | None:
    """Who triggered a run, as Airflow recorded it: never an authorizer of the run's changes."""
    if not dag_id or not run_id:
        return None
    name = _run_column(dag_id, run_id, "triggering_user_name")
    return str(name) if name else None


def airflow_gate_answers(dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
    """The answers a gate task's requests hold, oldest first: its earlier tries' (``hitl_detail_history``) and
    its current request's (a gate Airflow failed in the parking race is retried with the same request, answer
    and all): {"user", "option", "comment", "at", "try_number"}."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.hitl_history import HITLDetailHistory
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session
    from sqlalchemy import select

    found = []
    with create_session() as session:
        for detail_model, ti_model, key in (
            (HITLDetailHistory, TaskInstanceHistory, TaskInstanceHistory.task_instance_id),
            (HITLDetail, TaskInstance, TaskInstance.id),
        ):
            stmt = (
                select(detail_model, ti_model.try_number)
                .join(
                    ti_model,
                    key == (detail_model.ti_history_id if detail_model is HITLDetailHistory else detail_model.ti_id),
                )
                .where(
                    ti_model.dag_id == dag_id,
                    ti_model.run_id == run_id,
                    ti_model.task_id == task_id,
                    detail_model.responded_at.is_not(None),
                )
            )
            found += [_answer(detail, int(try_number)) for detail, try_number in session.execute(stmt).all()]
    return sorted(found, key=lambda a: (a["try_number"], a["at"]))


def _answer(detail: Any, try_number: int) -> dict[str, Any]:
    who = detail.responded_by or {}
    return {
        "user": str(who.get("id") or who.get("name") or ""),
        "option": str((detail.chosen_options or [""])[0]),
        "comment": str((detail.params_input or {}).get("comment") or ""),
        "at": detail.responded_at.isoformat() if detail.responded_at else "",
        "try_number": try_number,
    }


def default_store_url() -> str:
    """The change database: $RELEASE_MGMT_CHANGE_DB, else SQLite in AIRFLOW_HOME."""
    import os
    from pathlib import Path

    if url := os.environ.get("RELEASE_MGMT_CHANGE_DB"):
        return url
    from airflow.configuration import AIRFLOW_HOME

    return f"sqlite:///{Path(AIRFLOW_HOME) / 'release_mgmt_changes.db'}"
