"""Planner: the release DAG as data, checked without Airflow."""

from __future__ import annotations

from typing import Any

from release_mgmt.definition.models import ReleaseDefinition
from release_mgmt.planning import deploy_order, doc_md, plan_lines, plan_release
from tests.helpers import command, minimal_definition


def _component(name: str, *deps: str, validate: bool = True) -> dict:
    comp: dict[str, Any] = {
        "name": name,
        "version": "1.0.0",
        "depends_on": list(deps),
        "deploy": command(f"deploy {name}"),
        "rollback": command(f"rollback {name}"),
    }
    if validate:
        comp["validate"] = [command(f"check {name}")]
    return comp


def _definition(*components: dict, envs: tuple[str, ...] = ("dev", "prod")) -> ReleaseDefinition:
    return ReleaseDefinition.model_validate(
        minimal_definition(components=list(components), environments=[{"name": e} for e in envs])
    )


def _upstream(plan, task_id: str) -> set[str]:
    return set(next(t for t in plan.tasks() if t.task_id == task_id).upstream)


def test_deploy_order_respects_dependencies_and_definition_order() -> None:
    """Dependencies come first; independent components keep the order they were written in."""
    defn = _definition(_component("web", "api"), _component("worker"), _component("api", "db"), _component("db"))
    assert [c.name for c in deploy_order(defn.components)] == ["worker", "db", "api", "web"]


def test_dependents_deploy_after_dependencies_are_validated() -> None:
    """deploy_api waits for validate_db; independent components start right after enter."""
    plan = plan_release(_definition(_component("db"), _component("api", "db"), _component("worker")), "x.yaml")
    assert _upstream(plan, "dev.deploy_db") == {"dev.enter"}
    assert _upstream(plan, "dev.deploy_worker") == {"dev.enter"}
    assert _upstream(plan, "dev.deploy_api") == {"dev.validate_db"}
    assert _upstream(plan, "dev.validate_api") == {"dev.deploy_api"}


def test_component_without_validation_counts_as_ready_after_deploy() -> None:
    """With no validation steps there is no validate task and dependents wait for the deploy."""
    plan = plan_release(_definition(_component("db", validate=False), _component("api", "db")), "x.yaml")
    ids = {t.task_id for t in plan.tasks()}
    assert "dev.validate_db" not in ids
    assert _upstream(plan, "dev.deploy_api") == {"dev.deploy_db"}


def test_rollback_runs_after_all_work_and_dependents_first() -> None:
    """rollback_db waits for every deploy/validate and for the rollback of everything depending on it."""
    plan = plan_release(
        _definition(_component("db"), _component("api", "db"), _component("web", "api"), _component("worker")), "x.yaml"
    )
    work = {f"dev.{kind}_{c}" for kind in ("deploy", "validate") for c in ("db", "api", "web", "worker")}
    assert _upstream(plan, "dev.rollback_db") == work | {"dev.rollback_api", "dev.rollback_web"}
    assert _upstream(plan, "dev.rollback_api") == work | {"dev.rollback_web"}
    assert _upstream(plan, "dev.rollback_worker") == work
    rollback = next(t for t in plan.tasks() if t.task_id == "dev.rollback_db")
    assert rollback.trigger_rule == "all_done"


def test_environments_chain_through_results() -> None:
    """An environment starts after preflight and every earlier result (none failed); the summary waits for all."""
    plan = plan_release(_definition(_component("api"), envs=("dev", "staging", "prod")), "x.yaml")
    assert _upstream(plan, "dev.enter") == {"preflight"}
    assert _upstream(plan, "staging.enter") == {"preflight", "dev.result"}
    assert _upstream(plan, "prod.enter") == {"preflight", "dev.result", "staging.result"}
    assert next(t for t in plan.tasks() if t.task_id == "prod.enter").trigger_rule == "none_failed"
    assert _upstream(plan, "summary") == {"dev.result", "staging.result", "prod.result"}
    result = next(t for t in plan.tasks() if t.task_id == "prod.result")
    assert set(result.upstream) == {"prod.enter", "prod.deploy_api", "prod.validate_api", "prod.rollback_api"}


def test_plan_is_deterministic() -> None:
    """The same definition gives the same plan, task for task."""
    defn = _definition(_component("db"), _component("api", "db"), _component("worker"))
    assert plan_release(defn, "x.yaml") == plan_release(defn, "x.yaml")


def test_component_without_rollback_has_no_rollback_task() -> None:
    """With policy.require_rollback false, a component may have no rollback task."""
    comp = _component("api")
    del comp["rollback"]
    defn = ReleaseDefinition.model_validate(
        minimal_definition(components=[comp, _component("db")], policy={"require_rollback": False})
    )
    ids = {t.task_id for t in plan_release(defn, "x.yaml").tasks()}
    assert "dev.rollback_api" not in ids
    assert "dev.rollback_db" in ids


def test_gates_stand_between_enter_and_the_first_deploys() -> None:
    """Gates run in order after enter; components without dependencies wait for the last gate."""
    data = minimal_definition(
        approver_groups={"sre": ["a", "b", "c"]},
        components=[_component("db"), _component("api", "db")],
        environments=[
            {"name": "dev"},
            {
                "name": "prod",
                "gates": [
                    {"type": "approval", "name": "sre", "groups": ["sre"]},
                    {"type": "approval", "name": "cab", "users": ["a", "b"]},
                ],
            },
        ],
    )
    plan = plan_release(ReleaseDefinition.model_validate(data), "x.yaml")
    assert _upstream(plan, "prod.gate_sre") == {"prod.enter"}
    assert _upstream(plan, "prod.gate_cab") == {"prod.gate_sre"}
    assert _upstream(plan, "prod.deploy_db") == {"prod.gate_cab"}
    assert _upstream(plan, "prod.deploy_api") == {"prod.validate_db"}
    assert "prod.gate_cab" in _upstream(plan, "prod.result")
    assert _upstream(plan, "dev.deploy_db") == {"dev.enter"}


def test_break_glass_is_asked_once_before_any_environment() -> None:
    """With break_glass defined, one break_glass task stands between preflight and the first environment."""
    data = minimal_definition(break_glass={"type": "approval", "users": ["a", "b"]})
    plan = plan_release(ReleaseDefinition.model_validate(data), "x.yaml")
    assert _upstream(plan, "break_glass") == {"preflight"}
    assert _upstream(plan, "dev.enter") == {"break_glass"}
    assert _upstream(plan, "prod.enter") == {"break_glass", "dev.result"}


def test_locks_only_where_runs_can_meet() -> None:
    """One run at a time (the default) needs no lock; several runs, or a lock shared with other
    releases, put ``lock`` before the first deploys and ``unlock`` after every deploy, check and rollback."""
    single = plan_release(_definition(_component("db"), _component("api", "db")), "x.yaml")
    assert not [t for t in single.tasks() if t.kind in ("lock", "unlock")]
    data = minimal_definition(
        components=[_component("db"), _component("api", "db")],
        environments=[{"name": "dev"}, {"name": "prod", "lock": "prod-cluster", "lock_timeout": "2h"}],
    )
    shared = plan_release(ReleaseDefinition.model_validate(data), "x.yaml")
    assert [t.task_id for t in shared.tasks() if t.kind == "lock"] == ["prod.lock"]
    prod = shared.environments[1]
    assert (prod.lock, prod.lock_timeout.total_seconds(), shared.environments[0].lock) == ("prod-cluster", 7200, None)
    several = plan_release(ReleaseDefinition.model_validate({**data, "max_active_runs": 3}), "x.yaml")
    assert [e.lock for e in several.environments] == ["shop/dev", "prod-cluster"]
    assert several.max_active_runs == 3
    assert _upstream(several, "dev.deploy_db") == {"dev.lock"}
    assert _upstream(several, "dev.deploy_api") == {"dev.validate_db"}
    assert _upstream(several, "dev.unlock") == {
        "dev.lock",
        "dev.deploy_db",
        "dev.validate_db",
        "dev.deploy_api",
        "dev.validate_api",
        "dev.rollback_db",
        "dev.rollback_api",
    }
    assert next(t for t in several.tasks() if t.task_id == "dev.unlock").trigger_rule == "all_done"
    assert "dev.unlock" in _upstream(several, "dev.result")


def test_plan_texts_show_the_values_a_reviewer_needs() -> None:
    """Change plans, the preflight plan and the DAG docs name environment, vars and (at run time) versions, not
    template text; the DAG docs list each environment's approvers, change, windows and lock."""
    from release_mgmt.planning.words import with_versions

    data = minimal_definition(
        "shop",
        approver_groups={"sre": ["alice", "bob"]},
        windows=[{"name": "close", "kind": "freeze", "reason": "quarter close", "timezone": "UTC",
                  "start": "2026-12-28 00:00", "end": "2027-01-02 00:00", "environments": ["prod"]}],
        environments=[
            {"name": "dev", "variables": {"port": "8081"}},
            {"name": "prod", "variables": {"port": "8083"}, "lock": "prod-cluster",
             "gates": [{"type": "approval", "groups": ["sre"], "timeout": "4h"}],
             "change": {"type": "normal", "authorizers": {"users": ["carol"]}}},
        ],
    )  # fmt: skip
    data["components"][0]["deploy"] = {
        "type": "command",
        "command": "deploy --env {{ environment }} --port {{ vars.port }} --version {{ version }} {{ params.x }}",
    }
    plan = plan_release(ReleaseDefinition.model_validate(data), "shop.yaml")
    change = next(t for e in plan.environments for t in e.tasks if t.kind == "change_open")
    implementation = change.arguments["implementation_plan"]
    assert "deploy --env prod --port 8083 --version {{ version }} {{ params.x }}" in implementation
    filled = with_versions(implementation, {"api": "1.4.0"})
    assert "- api: run `deploy --env prod --port 8083 --version 1.4.0 {{ params.x }}`" in filled
    assert "prod.deploy_api: run `deploy --env prod --port 8083" in "\n".join(plan_lines(plan))
    docs = doc_md(plan)
    assert "approval gate `approval`: 1 of alice, bob, within 4h (then reject)" in docs
    assert "normal change request, authorized by 1 of carol" in docs
    assert "windows: freeze close" in docs
    assert "lock `prod-cluster`" in docs
    assert "No break-glass: freezes always hold." in docs
