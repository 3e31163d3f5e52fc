"""A train -> its plan: the plan of the train as a release whose components are its members
(definition/trains.py ``as_release``), with the tasks that differ given the train's operators
(operators/train.py): the preflight settles every member's versions; ``deploy_<member>`` runs the member's own
DAG for the environment; ``rollback_<member>`` (with ``rollback_train``) runs it again at the last known good
versions; the change lists every member's versions and says how the train deploys and backs out. Pure."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from release_mgmt.definition.trains import LoadedTrain, member_order
from release_mgmt.planning import ReleasePlan, TaskSpec, plan_release

_TRAIN = "release_mgmt.operators.train"
OPERATORS = {
    "preflight": f"{_TRAIN}.TrainPreflightOperator",
    "deploy": f"{_TRAIN}.TrainStageOperator",
    "rollback": f"{_TRAIN}.TrainRevertOperator",
    "change_open": f"{_TRAIN}.TrainChangeOpenOperator",
    "change_close": f"{_TRAIN}.TrainChangeCloseOperator",
}
BACKOUT = {
    "rollback_train": "A member whose deploy or checks fail rolls itself back (its own rollback steps); then every "
    "member already deployed here is deployed again at its last known good version, by its own DAG.",
    "stop": "A member whose deploy or checks fail rolls itself back (its own rollback steps); no other member starts "
    "here; members already deployed here stay.",
    "continue": "A member whose deploy or checks fail rolls itself back (its own rollback steps); the members that "
    "do not depend on it go on.",
}


def dag_id_for_train(name: str) -> str:
    return f"train_{name}"


def member_arguments(loaded: LoadedTrain) -> dict[str, dict[str, Any]]:
    """What the preflight needs of each member, in train order: components, defaults, sources, pinned versions."""
    pins = {m.release: dict(m.versions) for m in loaded.train.members}
    found = {}
    for name in member_order(loaded.train):
        defn = loaded.members[name]
        found[name] = {
            "components": [c.name for c in defn.components],
            "defaults": {c.name: c.version or "" for c in defn.components},
            "sources": {c.name: c.source.model_dump(mode="json", by_alias=True) for c in defn.components if c.source},
            "pins": pins[name],
        }
    return found


def _change_texts(loaded: LoadedTrain, environment: str) -> dict[str, str]:
    lines = []
    for name in member_order(loaded.train):
        member = next(m for m in loaded.train.members if m.release == name)
        after = f" (after {', '.join(member.after)})" if member.after else ""
        comps = ", ".join(c.name for c in loaded.members[name].components)
        lines.append(f"- {name}{after}: release_{name} for {environment}: {comps}")
    return {
        "description": loaded.train.description or f"Release train {loaded.train.name}",
        "implementation_plan": "Each member's own release DAG deploys its components here, in this order:\n"
        + "\n".join(lines),
        "backout_plan": BACKOUT[loaded.train.on_member_failure],
        "test_plan": "Each member's own checks after each deploy (see each member's DAG).",
    }


def plan_train(loaded: LoadedTrain) -> ReleasePlan:
    """The train's plan: same train, same plan."""
    plan = plan_release(loaded.release, loaded.source)
    policy = loaded.train.on_member_failure
    members = member_arguments(loaded)

    def patched(task: TaskSpec) -> TaskSpec:
        operator = OPERATORS.get(task.kind)
        if operator is None:
            return task
        args: dict[str, Any] = dict(task.arguments)
        if task.kind == "preflight":
            args = {"members": members}
        elif task.kind in ("deploy", "rollback"):
            args = {
                "environment": task.environment,
                "member": task.component,
                "policy": policy,
                "poke_seconds": loaded.train.poke_seconds,
                "waive_gates": loaded.train.member_gates == "waive",
                "retries": 0,  # a member's run is never started twice behind anyone's back
            }
        elif task.kind == "change_open":
            args |= _change_texts(loaded, str(task.environment))
        return replace(task, operator=operator, arguments=args)

    envs = tuple(replace(env, tasks=tuple(patched(t) for t in env.tasks)) for env in plan.environments)
    return replace(
        plan, dag_id=dag_id_for_train(loaded.train.name), preflight=patched(plan.preflight), environments=envs
    )
