"""Step fences (issue 16, row 2): a lock whose run was marked failed stays held while that run's step may still be
running; fences are held as the token's task, seen by other tasks, and lapse when their task stops renewing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine

from release_mgmt.change_service.app import create_app
from release_mgmt.change_service.callers import basic_auth
from release_mgmt.change_service.contract import FENCES, LOCKS, Holder
from release_mgmt.change_service.fences import Fenced, FenceStore
from release_mgmt.change_service.locks import LockStore
from release_mgmt.change_service.service_token import TaskIdentity, make_token
from release_mgmt.change_service.store import ChangeStore
from tests.servers import serve_app

pytestmark = pytest.mark.faults


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _deploy(run: str) -> Fenced:
    return Fenced("release_shop", run, "prod", "web", "prod.deploy_web")


def test_a_marked_failed_run_keeps_its_lock_while_its_step_may_run(tmp_path: Path) -> None:
    """Run r1 is marked failed mid-deploy: r2 does not get the lock until r1's fence is ended or has lapsed."""
    clock = Clock()
    engine = create_engine(f"sqlite:///{tmp_path / 'locks.db'}")
    fences = FenceStore(engine, clock)
    runs = {"r1": "running", "r2": "running"}
    locks = LockStore(engine, lambda dag, run: runs.get(run), fences)
    assert locks.acquire("shop/prod", Holder("release_shop", "r1", "prod"))["granted"]
    fences.hold(_deploy("r1"), 30)
    runs["r1"] = "failed"  # the README's way to free a lock, while the deploy's command still runs
    assert not locks.acquire("shop/prod", Holder("release_shop", "r2", "prod"))["granted"]
    clock.now += 29
    assert not locks.acquire("shop/prod", Holder("release_shop", "r2", "prod"))["granted"]
    clock.now += 2  # the killed task stopped renewing: its guard stopped the step long before the lease ends
    assert locks.acquire("shop/prod", Holder("release_shop", "r2", "prod"))["granted"]
    assert locks.history("shop/prod")[-1]["released_why"] == "run r1 is failed"
    lapsed = fences.live("release_shop", "prod")
    assert lapsed == []


def test_an_ended_fence_frees_the_lock_at_once(tmp_path: Path) -> None:
    clock = Clock()
    engine = create_engine(f"sqlite:///{tmp_path / 'locks.db'}")
    fences = FenceStore(engine, clock)
    runs = {"r1": "running", "r2": "running"}
    locks = LockStore(engine, lambda dag, run: runs.get(run), fences)
    locks.acquire("shop/prod", Holder("release_shop", "r1", "prod"))
    fences.hold(_deploy("r1"), 30)
    runs["r1"] = "failed"
    ended = fences.end(_deploy("r1"), "step stopped")
    assert ended is not None
    assert ended["ended_why"] == "step stopped"
    assert locks.acquire("shop/prod", Holder("release_shop", "r2", "prod"))["granted"]


def test_a_live_run_holds_its_lock_whatever_its_fences(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'locks.db'}")
    locks = LockStore(engine, lambda dag, run: "running", FenceStore(engine))
    locks.acquire("shop/prod", Holder("release_shop", "r1", "prod"))
    assert not locks.acquire("shop/prod", Holder("release_shop", "r2", "prod"))["granted"]


def test_renewing_extends_and_leases_are_capped(tmp_path: Path) -> None:
    clock = Clock()
    fences = FenceStore(create_engine(f"sqlite:///{tmp_path / 'f.db'}"), clock)
    fences.hold(_deploy("r1"), 30)
    clock.now += 25
    fences.hold(_deploy("r1"), 30)
    clock.now += 25
    assert len(fences.live("release_shop", "prod", component="web")) == 1
    fences.hold(_deploy("r1"), 10_000)
    clock.now += 301
    assert fences.live("release_shop", "prod") == []


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RELEASE_MGMT_SERVICE_SECRET", "s" * 40)
    app = create_app(ChangeStore(f"sqlite:///{tmp_path / 'changes.db'}"), basic_auth({"alice": ("pw", "admin")}))
    with serve_app(app) as url:
        yield url


def _as(run: str, task_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(TaskIdentity('release_shop', run, task_id))}"}


def test_over_http_a_fence_is_the_tokens_task_and_others_see_it(service: str) -> None:
    """The holder is the token's task whatever the body says; the rollback sees the deploy's fence, not its own;
    people may not hold fences; bad input is a 400."""
    deploy = _as("r1", "prod.deploy_web")
    forged: dict[str, Any] = {
        "component": "web",
        "seconds": 30,
        "dag_id": "release_other",
        "run_id": "x",
        "task_id": "y",
    }
    held = requests.post(f"{service}{FENCES}/hold", json=forged, headers=deploy, timeout=10)
    assert held.status_code == 200, held.text
    assert (held.json()["result"]["run_id"], held.json()["result"]["task_id"]) == ("r1", "prod.deploy_web")
    rollback = _as("r1", "prod.rollback_web")
    seen = requests.get(f"{service}{FENCES}", params={"component": "web"}, headers=rollback, timeout=10)
    assert [f["task_id"] for f in seen.json()["result"]] == ["prod.deploy_web"]
    mine = requests.get(f"{service}{FENCES}", params={"component": "web"}, headers=deploy, timeout=10)
    assert mine.json()["result"] == []
    person = requests.post(f"{service}{FENCES}/hold", json={"component": "web"}, auth=("alice", "pw"), timeout=10)
    assert person.status_code == 403
    bodies: list[dict[str, Any]] = [{"component": "web", "seconds": 0}, {"component": "web", "seconds": True}]
    for body in [*bodies, {"component": "../x"}]:
        bad = requests.post(f"{service}{FENCES}/hold", json=body, headers=deploy, timeout=10)
        assert bad.status_code == 400, body
    preflight = requests.post(f"{service}{FENCES}/hold", json={"component": "web"}, headers=_as("r1", "preflight"))
    assert preflight.json()["error"]["message"] == "Not an environment's release task"
    ended = requests.post(f"{service}{FENCES}/end", json={"component": "web", "why": "done"}, headers=deploy)
    assert ended.json()["result"]["state"] == "ended"
    assert requests.get(f"{service}{FENCES}", params={"component": "web"}, headers=rollback).json()["result"] == []
    assert requests.get(f"{service}{LOCKS}", auth=("alice", "pw"), timeout=10).status_code == 200


def test_gate_progress_is_the_gate_tasks_own(service: str) -> None:
    """A gate task keeps and reads back its own progress (another task of the run sees none); people may not;
    a body with other keys or the wrong shapes is a 400. A standalone service knows no earlier answers."""
    gate = _as("r1", "prod.gate_approval")
    kept: dict[str, Any] = {
        "deadline": "2026-11-30T00:00:00+00:00",
        "votes": [{"user": "bob", "at": "x"}],
        "refused": [],
    }
    path = f"{service}/api/release_mgmt/gates/progress"
    assert requests.put(path, json=kept, headers=gate, timeout=10).status_code == 200
    assert requests.get(path, headers=gate, timeout=10).json()["result"] == {"progress": kept, "answers": []}
    other = requests.get(path, headers=_as("r1", "prod.deploy_web"), timeout=10).json()["result"]
    assert other["progress"] is None
    assert requests.get(path, auth=("alice", "pw"), timeout=10).status_code == 403
    bad: list[dict[str, Any]] = [{**kept, "approved": True}, {"votes": "bob"}, {"deadline": 5}, {"decided": "yes"}]
    for body in bad:
        assert requests.put(path, json=body, headers=gate, timeout=10).status_code == 400, body


def test_unlock_of_a_live_run_waits_for_its_steps_fence(tmp_path: Path) -> None:
    """A deploy task marked failed while its step is being stopped: the run lives on, and its unlock must not hand
    the lock over yet. The release answers ``fenced`` and keeps the lock until the fence ends."""
    engine = create_engine(f"sqlite:///{tmp_path / 'locks.db'}")
    fences = FenceStore(engine)
    locks = LockStore(engine, lambda dag, run: "running", fences)
    me = Holder("release_shop", "r1", "prod")
    locks.acquire("shop/prod", me)
    fences.hold(_deploy("r1"), 30)
    kept = locks.release("shop/prod", me, "prod done")
    assert kept is not None
    assert kept["fenced"] is True
    assert locks.status("shop/prod")[0]["holder"]["run_id"] == "r1"
    fences.end(_deploy("r1"), "step stopped")
    released = locks.release("shop/prod", me, "prod done")
    assert released is not None
    assert (released["state"], released.get("fenced")) == ("released", None)
