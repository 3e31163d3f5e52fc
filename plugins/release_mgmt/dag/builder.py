"""Plan -> Airflow DAG: one DAG per release definition. The plan (planning/) already says, per task, which
operator runs it with which arguments; this module only makes the operators, the task groups and the edges,
and adds the trigger form, the docs and the timetable. Broken definitions become error DAGs (dag/broken.py).
"""

from __future__ import annotations

import importlib
import os
import time
import zlib
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from airflow.sdk import DAG, BaseOperator, TaskGroup, get_parsing_context
from airflow.sdk.configuration import conf
from airflow.sdk.definitions.param import ParamsDict

from release_mgmt.dag.broken import INVALID_TAG, START_DATE, broken_dag_id, build_broken_dag, safe_stem
from release_mgmt.dag.shards import files_of, may_hold, shard_of_file, warn_if_slow
from release_mgmt.dag.timetable import MaintenanceWindowTimetable
from release_mgmt.dag.trigger_form import trigger_params
from release_mgmt.definition.budget import BudgetExceededError, time_budget
from release_mgmt.definition.loader import (
    BUDGET_SECONDS,
    LoadedDefinition,
    LoadReport,
    display_path,
    files_named,
    load_file,
    load_paths,
    over_budget,
    unusable,
)
from release_mgmt.definition.owners import choose_owner
from release_mgmt.errors import DefinitionError
from release_mgmt.notify import routes
from release_mgmt.planning import ReleasePlan, TaskSpec, dag_id_for, doc_md, plan_release

__all__ = ["INVALID_TAG", "build_dag", "build_release_dags", "trigger_params"]

#: the package whose operators a plan may name
OPERATOR_PACKAGE = "release_mgmt.operators."


@cache
def operator_class(path: str) -> type[BaseOperator]:
    """The operator class a plan names by its dotted path (only release_mgmt's own operators)."""
    if not path.startswith(OPERATOR_PACKAGE):
        raise ValueError(f"a plan may name release_mgmt's operators only, not {path!r}")
    module, _, name = path.rpartition(".")
    found = getattr(importlib.import_module(module), name)
    if not (isinstance(found, type) and issubclass(found, BaseOperator)):
        raise TypeError(f"{path} is not an operator")
    return found


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
        doc_md=doc_md(plan),
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
        made["preflight"] = _make(plan.preflight, common)
        if plan.break_glass is not None:
            made["break_glass"] = _make(plan.break_glass, common)
        for env in plan.environments:
            with TaskGroup(group_id=env.name, tooltip=env.description or f"Environment {env.name}"):
                for task in env.tasks:
                    made[task.task_id] = _make(task, common)
        made["summary"] = _make(plan.summary, common)
    for task in plan.tasks():
        for up in task.upstream:
            made[up] >> made[task.task_id]
    # The trigger form is set once the tasks exist: Airflow deep-copies a DAG's params into each task at every
    # __init__ level of its operator class, and serializes every copy; at run time it merges the DAG's params
    # with the task's own anyway (process_params), so a task needs no copy of the form.
    dag.params = ParamsDict(trigger_params(plan))
    return dag


def _make(task: TaskSpec, common: dict[str, Any]) -> BaseOperator:
    operator = operator_class(task.operator)
    return operator(task_id=task.local_id, trigger_rule=task.trigger_rule, **common, **task.arguments)


def build_release_dags(
    releases_dir: Path,
    display_root: Path | None = None,
    only: str | None = None,
    shard: tuple[int, int] | None = None,
) -> dict[str, DAG]:
    """Every release DAG of a folder (or of one ``shard`` of it: index, count; dag/shards.py), broken definitions
    included as error DAGs.

    ``only`` (default: the dag id Airflow's parsing context names, for a worker running one task) builds just
    that DAG, reading only the file that declares it when a plain ``name:`` line says which.
    """
    started = time.perf_counter()
    wanted = only if only is not None else get_parsing_context().dag_id
    files = files_of(releases_dir, shard) if shard else [releases_dir]
    if wanted is not None and shard and not may_hold(files, wanted, shard):
        return {}
    if wanted is not None and (one := _one_release(files, display_root, wanted)) is not None:
        return one
    report = load_paths(files, root=display_root)
    dags: dict[str, DAG] = {}
    used = {dag_id_for(item.definition.name) for item in report.loaded}
    for item in report.loaded:
        dag_id = dag_id_for(item.definition.name)
        if wanted is None or wanted == dag_id:
            dags[dag_id] = _isolated(item, dag_id)
    for error in sorted(report.errors, key=lambda e: e.duplicate):  # a name's owner first, claimants after
        dag_id = _free_id(error, used)
        used.add(dag_id)
        if wanted is None or wanted == dag_id:
            dags[dag_id] = build_broken_dag(error, dag_id)
    if shard and wanted is None:
        timeout = conf.getfloat("core", "dagbag_import_timeout", fallback=30.0)
        warn_if_slow(time.perf_counter() - started, timeout, shard, len(report.loaded) + len(report.errors))
    return dags


def _free_id(error: DefinitionError, used: set[str]) -> str:
    """A broken file's DAG id that no other file of the folder has: its release name's, unless another file owns
    the name (then ``release_invalid_<file>``, the file's own)."""
    dag_id = broken_dag_id(error)
    if dag_id not in used:
        return dag_id
    dag_id = dag_id_for(f"invalid_{safe_stem(error.path)}")
    return dag_id if dag_id not in used else f"{dag_id}_{zlib.crc32(str(error.path).encode()):08x}"


def shard_dags(dag_file: str) -> dict[str, DAG]:
    """What one shard DAG file of ``dags/`` exposes: the releases of its shard, read from
    ``$RELEASE_MGMT_RELEASES_DIR`` or ``include/releases`` beside the DAGs folder, named relative to the repository."""
    repo = Path(dag_file).resolve().parents[1]
    releases = Path(os.environ.get("RELEASE_MGMT_RELEASES_DIR") or repo / "include" / "releases")
    return build_release_dags(releases, display_root=repo, shard=shard_of_file(dag_file))


def _one_release(files: list[Path], display_root: Path | None, dag_id: str) -> dict[str, DAG] | None:
    """The DAG a worker asks for, reading only the file that owns its release name (a worker starts one task of
    one release: reading every definition would make it cost more with each release added). None when the
    owner cannot be told without reading every file (then the caller does): some file's name is not on a plain
    ``name:`` line, none declares it, or the owner is broken."""
    name = dag_id.removeprefix("release_")
    candidates = files_named(files, name) if dag_id.startswith("release_") else None
    if not candidates:
        return None
    owner = candidates[0] if len(candidates) == 1 else choose_owner(name, candidates)
    try:
        with time_budget(BUDGET_SECONDS, "reading this definition"):
            item = load_file(owner, display_path(owner, display_root))
    except Exception:  # noqa: BLE001 - a broken file: the caller reads the folder, which reports it
        return None
    return {dag_id: _isolated(item, dag_id)} if item.definition.name == name else None


def _isolated(item: LoadedDefinition, dag_id: str) -> DAG:
    """The release's DAG; whatever planning or building it raises, its own error DAG under its own id (every
    other release still loads)."""
    dag, error = _built(item)
    return dag if dag is not None else build_broken_dag(error, dag_id)  # type: ignore[arg-type]


def _built(item: LoadedDefinition) -> tuple[DAG | None, DefinitionError | None]:
    """(the release's DAG, None), or (None, why it could not be built within its budget)."""
    try:
        with time_budget(BUDGET_SECONDS, "building this release's DAG"):
            dag = build_dag(_plan(item))
        routes.register(item.definition)  # the tasks this process runs route their events by it
        return dag, None
    except BudgetExceededError as exc:
        error = over_budget(item.display, item.path, exc)
    except Exception as exc:  # noqa: BLE001 - one definition never costs more than its own DAG
        error = unusable(item.display, item.path, "valid, but its DAG could not be built", exc)
    error.name = item.definition.name
    return None, error


def validated(paths: list[Path], root: Path | None = None, calendars_dir: Path | None = None) -> LoadReport:
    """What ``validate`` reports: the definitions that become working release DAGs Airflow can store, and the
    error of every other file, exactly as its invalid-definition DAG shows it."""
    report = load_paths(paths, root=root, calendars_dir=calendars_dir)
    loaded: list[LoadedDefinition] = []
    errors = list(report.errors)
    for item in report.loaded:
        error = _working(item)[1]
        if error is None:
            loaded.append(item)
        else:
            errors.append(error)
    return LoadReport(tuple(loaded), tuple(errors))


def checked_dag(
    path: Path, root: Path | None = None, calendars_dir: Path | None = None
) -> tuple[LoadedDefinition | None, DAG | None, DefinitionError | None]:
    """One file as Airflow would have it: (definition, DAG, None) when it becomes a working release DAG, else
    (None, None, the error its invalid-definition DAG shows)."""
    report = load_paths([path], root=root, calendars_dir=calendars_dir)
    if report.errors:
        return None, None, report.errors[0]
    item = report.loaded[0]
    dag, error = _working(item)
    return (item, dag, None) if error is None else (None, None, error)


def _working(item: LoadedDefinition) -> tuple[DAG | None, DefinitionError | None]:
    """The release's DAG built and serialized as the DAG processor would (it drops a DAG it cannot serialize,
    with no trace in the release list), or why not."""
    from airflow.serialization.serialized_objects import DagSerialization

    dag, error = _built(item)
    if dag is None:
        return None, error
    try:
        DagSerialization.to_dict(dag)
    except Exception as exc:  # noqa: BLE001
        error = unusable(item.display, item.path, "valid, but Airflow cannot store its DAG", exc)
        error.name = item.definition.name
        return None, error
    return dag, None


def _plan(item: LoadedDefinition) -> ReleasePlan:
    return plan_release(item.definition, item.display, str(item.path.resolve().parent))
