"""Definition -> plan: the release DAG as plain data, deterministic and free of Airflow.

``graph`` lays out the tasks (ids, kinds, upstream ids, trigger rules); ``arguments`` gives each its operator
and that operator's JSON-able keyword arguments. The DAG builder (dag/builder.py) only turns the result into
operators, task groups and edges.
"""

from __future__ import annotations

from release_mgmt.definition.models import ReleaseDefinition
from release_mgmt.planning.arguments import OPERATORS, with_arguments
from release_mgmt.planning.graph import (
    ALL_DONE,
    ALL_SUCCESS,
    NONE_FAILED,
    EnvironmentPlan,
    ReleasePlan,
    TaskKind,
    TaskSpec,
    dag_id_for,
    deploy_order,
    lock_name,
    plan_graph,
    version_param,
)
from release_mgmt.planning.words import doc_md, plan_lines


def plan_release(defn: ReleaseDefinition, source: str, workdir: str = ".") -> ReleasePlan:
    """The plan of one valid definition, every task with its operator and arguments. Same definition, same
    plan: no clock, no randomness. ``source`` names the definition file in messages; ``workdir`` is where
    its commands run."""
    return with_arguments(plan_graph(defn, source, workdir))


__all__ = [
    "ALL_DONE",
    "ALL_SUCCESS",
    "NONE_FAILED",
    "OPERATORS",
    "EnvironmentPlan",
    "ReleasePlan",
    "TaskKind",
    "TaskSpec",
    "dag_id_for",
    "deploy_order",
    "doc_md",
    "lock_name",
    "plan_graph",
    "plan_lines",
    "plan_release",
    "version_param",
]
