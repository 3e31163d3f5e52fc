"""Definition -> plan: the release DAG as plain data (task ids, kinds, upstream ids). No Airflow here.
planning/arguments.py then gives each task its operator and that operator's JSON-able arguments.

Per environment (a task group, in promotion order) the plan holds:

- ``enter``: the environment's entry; waits for ``preflight`` and every earlier environment's
  ``result`` (none may fail; unselected ones skip) and skips when the run does not select it;
- ``change_open``: with a ``change`` configured, the change request for this run (before the gates);
- ``gate_<name>``: the environment's gates, one after the other (approvals: see gates/);
- ``change_authorized``: waits (deferred) until the change is authorized, then marks it Implement;
- ``lock``: when other runs may deploy here at the same time (``max_active_runs`` > 1 or a shared
  ``lock``), takes the environment's lock, waiting in line (deferred) while another run holds it;
- ``deploy_<c>``: after the lock (or the last gate, or ``enter``) and after every dependency of ``c``
  is deployed and validated;
- ``validate_<c>``: after ``deploy_<c>`` (only when ``c`` has validation steps);
- ``rollback_<c>``: once everything in the environment is done, dependents first; acts only
  when a deploy or validation in the environment failed and ``c`` was touched;
- ``unlock``: gives the lock back once every deploy, validation and rollback is done;
- ``change_close``: closes the change with the outcome (or cancels it when nothing was implemented);
- ``result``: fails when the environment failed, so no later environment starts.

A top-level ``preflight`` checks the trigger parameters first and a top-level ``summary``
reports every environment's outcome last, failing the run when any environment failed.
"""

from __future__ import annotations

import graphlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from release_mgmt.definition.models import Component, Environment, ReleaseDefinition
from release_mgmt.steps import StepModel

TaskKind = Literal[
    "preflight",
    "break_glass",
    "enter",
    "change_open",
    "gate",
    "change_authorized",
    "lock",
    "deploy",
    "validate",
    "rollback",
    "unlock",
    "change_close",
    "result",
    "summary",
]
ALL_SUCCESS = "all_success"
ALL_DONE = "all_done"
NONE_FAILED = "none_failed"


@dataclass(frozen=True)
class TaskSpec:
    """One task of the release DAG, as data."""

    task_id: str
    kind: TaskKind
    environment: str | None = None
    component: str | None = None
    upstream: tuple[str, ...] = ()
    trigger_rule: str = ALL_SUCCESS
    steps: tuple[StepModel, ...] = ()
    probe: StepModel | None = None
    #: rollback only: steps run when there is no previous version to restore (undeploy)
    fallback: tuple[StepModel, ...] = ()
    #: the task after which the component counts as deployed and healthy: it records the deployment
    records: bool = False
    #: the operator class that runs the task (dotted path) and its keyword arguments (plain JSON values),
    #: filled in by planning/arguments.py: the DAG builder only makes operators, groups and edges
    operator: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def local_id(self) -> str:
        """The id inside its task group (what the builder passes to the operator)."""
        return self.task_id.split(".", 1)[-1]


@dataclass(frozen=True)
class EnvironmentPlan:
    """An environment and its tasks in dependency order."""

    name: str
    description: str
    variables: dict[str, Any]
    tasks: tuple[TaskSpec, ...]
    on_freeze: str = "wait"
    outside_maintenance: str = "wait"
    expected_duration: timedelta = timedelta(0)
    #: this environment's change settings as JSON (None: no change requests here)
    change: dict[str, Any] | None = None
    #: the lock runs take before deploying here (None: one run at a time is guaranteed without it)
    lock: str | None = None
    lock_timeout: timedelta = timedelta(days=1)
    #: who may authorize this environment's changes (users, approver groups' and the assignment group's members)
    authorizers: tuple[str, ...] = ()
    #: after how long in line for the lock lock.waiting_long is told
    lock_notice: timedelta = timedelta(minutes=30)

    def local_ids(self, *excluded: str) -> list[str]:
        """The ids inside the task group of every task but those of the ``excluded`` kinds."""
        return [t.local_id for t in self.tasks if t.kind not in excluded]


@dataclass(frozen=True)
class ReleasePlan:
    """Everything the DAG builder needs, derived from one definition and nothing else."""

    dag_id: str
    release: str
    description: str
    owner: str
    team: str
    source: str
    workdir: str
    components: tuple[Component, ...]
    environments: tuple[EnvironmentPlan, ...]
    preflight: TaskSpec
    summary: TaskSpec
    parameters: dict[str, Any] = field(default_factory=dict)
    approver_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: freeze and maintenance windows that may apply to this release (its own and its calendars')
    windows: tuple[Any, ...] = ()
    #: the environment whose maintenance-window openings start runs (None: manual runs only)
    schedule_environment: str | None = None
    break_glass: TaskSpec | None = None
    max_active_runs: int = 1

    @property
    def environment_names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.environments)

    def tasks(self) -> list[TaskSpec]:
        """Every task, in a stable order."""
        top = [self.preflight, *([self.break_glass] if self.break_glass else [])]
        return [*top, *(t for e in self.environments for t in e.tasks), self.summary]


def dag_id_for(release_name: str) -> str:
    """The DAG id of a release."""
    return f"release_{release_name}"


def version_param(component: str) -> str:
    """The trigger-form key holding the version of ``component``."""
    return f"version_{component}"


def deploy_order(components: tuple[Component, ...]) -> list[Component]:
    """Components in dependency order; among independent ones, the order of the definition."""
    by_name = {c.name: c for c in components}
    sorter = graphlib.TopologicalSorter({c.name: c.depends_on for c in components})
    sorter.prepare()
    order: list[Component] = []
    position = {c.name: i for i, c in enumerate(components)}
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        order.extend(by_name[n] for n in ready)
        sorter.done(*ready)
    return order


def _dependents(components: list[Component]) -> dict[str, set[str]]:
    """For each component, every component that depends on it directly or transitively."""
    direct: dict[str, set[str]] = {c.name: set() for c in components}
    for comp in components:
        for dep in comp.depends_on:
            direct[dep].add(comp.name)
    result: dict[str, set[str]] = {}
    for comp in reversed(components):  # dependents come later in deploy order
        result[comp.name] = set(direct[comp.name])
        for d in direct[comp.name]:
            result[comp.name] |= result[d]
    return result


def lock_name(release: str, environment: Environment, max_active_runs: int) -> str | None:
    """The lock an environment's deploys take: the shared one it declares, else ``<release>/<environment>``
    when several runs of the release may be active; None when one run at a time is all Airflow allows."""
    if environment.lock is not None:
        return environment.lock
    return f"{release}/{environment.name}" if max_active_runs > 1 else None


def _entry_chain(environment: Environment, entry_upstream: tuple[str, ...], lock: str | None) -> list[TaskSpec]:
    """The chain before deployments: enter, the change opened, each gate in order, the change authorized, the lock."""
    env = environment.name
    entry = f"{env}.enter"
    tasks = [TaskSpec(entry, "enter", env, upstream=entry_upstream, trigger_rule=NONE_FAILED)]
    if environment.change is not None:
        tasks.append(TaskSpec(f"{env}.change_open", "change_open", env, upstream=(entry,)))
        entry = tasks[-1].task_id
    for gate in environment.gates:
        gate_args = {"gate": gate.model_dump(mode="json")}
        tasks.append(
            TaskSpec(
                f"{env}.gate_{gate.name}", "gate", env, upstream=(entry,), operator=gate.OPERATOR, arguments=gate_args
            )
        )
        entry = tasks[-1].task_id
    if environment.change is not None:
        tasks.append(TaskSpec(f"{env}.change_authorized", "change_authorized", env, upstream=(entry,)))
        entry = tasks[-1].task_id
    if lock is not None:
        tasks.append(TaskSpec(f"{env}.lock", "lock", env, upstream=(entry,)))
    return tasks


def _environment_tasks(
    environment: Environment, ordered: list[Component], entry_upstream: tuple[str, ...], lock: str | None
) -> list[TaskSpec]:
    env = environment.name
    tasks = _entry_chain(environment, entry_upstream, lock)
    entry = tasks[-1].task_id
    ready: dict[str, str] = {}  # component -> the task after which it counts as deployed and healthy
    for comp in ordered:
        deploy_id = f"{env}.deploy_{comp.name}"
        upstream = tuple(ready[d] for d in comp.depends_on) or (entry,)
        deploy = TaskSpec(
            deploy_id,
            "deploy",
            env,
            comp.name,
            upstream,
            steps=(comp.deploy,),
            probe=comp.current_version,
            records=not comp.validation,
        )
        tasks.append(deploy)
        ready[comp.name] = deploy_id
        if comp.validation:
            validate_id = f"{env}.validate_{comp.name}"
            tasks.append(
                TaskSpec(validate_id, "validate", env, comp.name, (deploy_id,), steps=comp.validation, records=True)
            )
            ready[comp.name] = validate_id
    work = tuple(t.task_id for t in tasks if t.kind in ("deploy", "validate"))
    dependents = _dependents(ordered)
    rollbacks: list[TaskSpec] = []
    with_rollback = {c.name for c in ordered if c.rollback is not None or c.undeploy is not None}
    for comp in reversed(ordered):
        if comp.name not in with_rollback:
            continue
        first = tuple(f"{env}.rollback_{d}" for d in sorted(dependents[comp.name] & with_rollback))
        rollbacks.append(
            TaskSpec(
                f"{env}.rollback_{comp.name}",
                "rollback",
                env,
                comp.name,
                work + first,
                ALL_DONE,
                steps=(comp.rollback,) if comp.rollback is not None else (),
                fallback=(comp.undeploy,) if comp.undeploy is not None else (),
            )
        )
    tasks.extend(rollbacks)
    if lock is not None:  # given back once nothing here runs any more, whatever happened
        held = (f"{env}.lock", *work, *(r.task_id for r in rollbacks))
        tasks.append(TaskSpec(f"{env}.unlock", "unlock", env, upstream=held, trigger_rule=ALL_DONE))
    if environment.change is not None:  # closes (or cancels) the change once everything else is done
        before = tuple(t.task_id for t in tasks)
        tasks.append(
            TaskSpec(
                f"{env}.change_close",
                "change_close",
                env,
                upstream=before,
                trigger_rule=ALL_DONE,
            )
        )
    everything = tuple(t.task_id for t in tasks)
    tasks.append(TaskSpec(f"{env}.result", "result", env, upstream=everything, trigger_rule=ALL_DONE))
    return tasks


def plan_graph(defn: ReleaseDefinition, source: str, workdir: str = ".") -> ReleasePlan:
    """The plan of one valid definition. Same definition, same plan: no clock, no randomness.

    ``source`` names the definition file in messages; ``workdir`` is where its commands run.
    """
    ordered = deploy_order(defn.components)
    preflight = TaskSpec("preflight", "preflight")
    first: tuple[str, ...] = (preflight.task_id,)
    break_glass = None
    if defn.break_glass is not None:  # an emergency run's approval to deploy during freezes, asked once
        gate_args = {"gate": defn.break_glass.model_dump(mode="json")}
        break_glass = TaskSpec("break_glass", "break_glass", upstream=first, arguments=gate_args)
        first = (break_glass.task_id,)
    envs: list[EnvironmentPlan] = []
    previous: tuple[str, ...] = first
    for env in defn.environments:
        lock = lock_name(defn.name, env, defn.max_active_runs)
        tasks = _environment_tasks(env, ordered, previous, lock)
        envs.append(
            EnvironmentPlan(
                env.name,
                env.description,
                dict(env.variables),
                tuple(tasks),
                env.on_freeze,
                env.outside_maintenance,
                env.expected_duration,
                env.change.model_dump(mode="json") if env.change else None,
                lock,
                env.lock_timeout,
                tuple(env.change.authorizers.names(defn.approver_groups, env.change.assignment_group))
                if env.change
                else (),
                env.lock_notice,
            )
        )
        previous = (*previous, f"{env.name}.result")
    summary = TaskSpec("summary", "summary", upstream=tuple(f"{e.name}.result" for e in envs), trigger_rule=ALL_DONE)
    return ReleasePlan(
        dag_id=dag_id_for(defn.name),
        release=defn.name,
        description=defn.description,
        owner=defn.owner,
        team=defn.team,
        source=source,
        workdir=workdir,
        components=tuple(ordered),
        environments=tuple(envs),
        preflight=preflight,
        summary=summary,
        parameters={k: v.model_dump() for k, v in sorted(defn.parameters.items())},
        approver_groups=dict(sorted(defn.approver_groups.items())),
        windows=tuple(w for w in defn.windows if not w.releases or defn.name in w.releases),
        schedule_environment=defn.schedule.at_maintenance_windows if defn.schedule else None,
        break_glass=break_glass,
        max_active_runs=defn.max_active_runs,
    )
