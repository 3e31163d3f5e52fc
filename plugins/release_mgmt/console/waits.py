"""What a run in progress waits for, in plain words: a freeze (until when, and what comes after), a
maintenance window, an approval gate (who may approve), a change (who may authorize), a lock (held by which
run). Pure: the definition, the run's task states and what the change service knows in; sentences out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from release_mgmt.change_service.approvals import eligible
from release_mgmt.definition.models import ReleaseDefinition
from release_mgmt.planning.graph import lock_name
from release_mgmt.rules.change import correlation_id
from release_mgmt.rules.windows import decide

#: task states that mean "waiting for something other than a worker"
WAITING = ("deferred", "awaiting_input", "up_for_reschedule")
AUTHORIZE = "-3"


@dataclass(frozen=True)
class Wait:
    """One thing a run waits for: ``kind`` (freeze, maintenance, approval, change, lock, task), the sentence,
    until when (None: until someone acts), who can end it, and where to go to act."""

    kind: str
    environment: str
    text: str
    until: datetime | None = None
    who: tuple[str, ...] = ()
    link: str = ""


def waits(
    defn: ReleaseDefinition,
    states: Mapping[str, str],
    now: datetime,
    *,
    changes: Sequence[Mapping[str, str]] = (),
    locks: Mapping[str, Mapping[str, Any]] | None = None,
    triggered_by: str = "",
    links: Mapping[str, str] | None = None,
) -> list[Wait]:
    """Every wait of one run, in promotion order. ``changes``: the run's change records; ``locks``: lock name ->
    status; ``links``: 'approval' and 'change' URL templates ({task_id}, {sys_id})."""
    links = links or {}
    found: list[Wait] = []
    for env in defn.environments:
        prefix = f"{env.name}."
        for task_id in sorted(t for t, s in states.items() if t.startswith(prefix) and s in WAITING):
            step = task_id.removeprefix(prefix)
            if step == "change_authorized":
                found.append(_change_wait(defn.name, env.name, changes, links))
            elif step.startswith("gate_"):
                found.append(
                    _gate_wait(defn, env.name, step, triggered_by, link=links.get("approval", ""), task_id=task_id)
                )
            elif step == "lock":
                found.append(_lock_wait(env.name, lock_name(defn.name, env, defn.max_active_runs), locks or {}))
            else:
                component = step.removeprefix("deploy_") if step.startswith("deploy_") else None
                found.append(_window_wait(defn, env.name, component, now))
    if states.get("break_glass") in WAITING:
        found.insert(0, Wait("approval", "", "waits for the break-glass approval of this emergency run"))
    return found


def _gate_wait(defn: ReleaseDefinition, env: str, step: str, triggered_by: str, *, link: str, task_id: str) -> Wait:
    name = step.removeprefix("gate_")
    environment = next(e for e in defn.environments if e.name == env)
    gate = next((g for g in environment.gates if getattr(g, "name", "") == name), None)
    people = list(getattr(gate, "eligible", lambda groups: [])(defn.approver_groups)) if gate else []
    if gate is not None and getattr(gate, "separation_of_duties", False):
        people = [p for p in people if p != triggered_by]
    needed = getattr(gate, "min_approvals", 1)
    who = ", ".join(people) or "nobody eligible"
    text = f"waits for approval '{name}' in {env}: {needed} of {who}; answer in Airflow's Required Actions"
    return Wait("approval", env, text, None, tuple(people), link.format(task_id=task_id) if link else "")


def _change_wait(release: str, env: str, changes: Sequence[Mapping[str, str]], links: Mapping[str, str]) -> Wait:
    def of_env(change: Mapping[str, str]) -> bool:
        return change.get("correlation_id") == correlation_id(release, env, change.get("u_airflow_run_id", ""))

    change = next(filter(of_env, changes), None)
    if change is None:
        return Wait("change", env, f"waits for the change of {env} to be authorized (no change record found yet)")
    excluded = {change.get("u_requested_by", "")} - {""}
    people = eligible(change.get("u_authorizers", ""), excluded)
    number = change.get("number", "")
    link = links.get("change", "").format(sys_id=change.get("sys_id", "")) if links.get("change") else ""
    if change.get("state") != AUTHORIZE:
        return Wait("change", env, f"waits for change {number} to reach Authorize", None, (), link)
    text = (
        f"waits for change {number} to be authorized by {change.get('u_min_authorizations') or 1} of "
        f"{', '.join(people) or 'nobody eligible'} (in the release console's Changes page)"
    )
    return Wait("change", env, text, None, tuple(people), link)


def _lock_wait(env: str, name: str | None, locks: Mapping[str, Mapping[str, Any]]) -> Wait:
    holder = (locks.get(name or "") or {}).get("holder") or {}
    if not holder:
        return Wait("lock", env, f"waits for lock {name} in {env}")
    return Wait(
        "lock", env, f"waits for lock {name}: held by {holder.get('dag_id')} run {holder.get('run_id')} ({env})"
    )


def _window_wait(defn: ReleaseDefinition, env: str, component: str | None, now: datetime) -> Wait:
    environment = next(e for e in defn.environments if e.name == env)
    expected = environment.expected_duration
    decision = decide(defn.windows, now, environment=env, release=defn.name, component=component, expected=expected)
    if decision.kind == "go":
        return Wait("task", env, f"waits to be picked up again in {env} (its window is open now)")
    kind = "freeze" if decision.reason.startswith("frozen") else "maintenance"
    return Wait(kind, env, f"{env}: {decision.reason}", decision.until)
