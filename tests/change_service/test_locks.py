"""Environment locks: one holder at a time, waiters served in the order they asked, dead holders freed,
on SQLite and on PostgreSQL, directly and through the service's HTTP API."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine

from release_mgmt.change_service.app import create_app
from release_mgmt.change_service.callers import basic_auth
from release_mgmt.change_service.contract import Holder
from release_mgmt.change_service.locks import LockStore
from release_mgmt.change_service.service_token import TaskIdentity, make_token
from release_mgmt.change_service.store import ChangeStore
from tests.servers import serve_app

LOCKS = "/api/release_mgmt/locks"


def _holder(run: str, env: str = "prod") -> Holder:
    return Holder("release_shop", run, env)


@pytest.fixture
def store(tmp_path: Path) -> LockStore:
    return LockStore(create_engine(f"sqlite:///{tmp_path / 'locks.db'}"))


def test_waiters_are_served_in_the_order_they_asked(store: LockStore) -> None:
    """The first caller holds; later ones queue; each release hands the lock to the oldest waiter."""
    first, second, third = _holder("r1"), _holder("r2"), _holder("r3")
    assert store.acquire("shop/prod", first)["granted"]
    assert not store.acquire("shop/prod", second)["granted"]
    answer = store.acquire("shop/prod", third)
    assert not answer["granted"]
    assert answer["holder"]["run_id"] == "r1"
    assert [r["run_id"] for r in answer["queue"]] == ["r2", "r3"]
    # the third asks again before the second: still not its turn
    store.release("shop/prod", first)
    assert not store.acquire("shop/prod", third)["granted"]
    assert store.acquire("shop/prod", second)["granted"]
    store.release("shop/prod", second)
    assert store.acquire("shop/prod", third)["granted"]


def test_acquire_is_idempotent_and_other_locks_are_independent(store: LockStore) -> None:
    """Asking again (a retried call, the trigger polling) never queues twice; locks do not block each other."""
    me = _holder("r1")
    assert store.acquire("shop/prod", me)["granted"]
    assert store.acquire("shop/prod", me)["granted"]
    assert store.acquire("shop/staging", _holder("r2", "staging"))["granted"]
    assert store.acquire("shop/prod", _holder("r1", "staging"))["queue"][0]["environment"] == "staging"
    assert len(store.history("shop/prod")) == 2


def test_a_waiter_that_gives_up_leaves_the_queue(store: LockStore) -> None:
    """Releasing a request still waiting withdraws it, saying so; the next in line is served."""
    store.acquire("shop/prod", _holder("r1"))
    store.acquire("shop/prod", _holder("r2"))
    store.acquire("shop/prod", _holder("r3"))
    withdrawn = store.release("shop/prod", _holder("r2"), "gave up waiting: timeout")
    assert withdrawn is not None
    assert withdrawn["was"] == "waiting"
    assert withdrawn["released_why"] == "withdrawn while waiting: gave up waiting: timeout"
    store.release("shop/prod", _holder("r1"))
    assert store.acquire("shop/prod", _holder("r3"))["granted"]
    assert store.release("shop/prod", _holder("nobody")) is None
    assert store.status("never/taken") == [{"lock": "never/taken", "holder": None, "queue": []}]
    assert [x["lock"] for x in store.status()] == ["shop/prod"]


def test_a_holder_whose_run_ended_is_freed(tmp_path: Path) -> None:
    """A run that failed or was deleted without giving the lock back does not block the environment."""
    runs = {"r1": "running", "r2": "running"}
    store = LockStore(create_engine(f"sqlite:///{tmp_path / 'locks.db'}"), lambda dag, run: runs.get(run))
    store.acquire("shop/prod", _holder("r1"))
    assert not store.acquire("shop/prod", _holder("r2"))["granted"]
    runs["r1"] = "failed"  # e.g. marked failed in the UI while it held the lock
    assert store.acquire("shop/prod", _holder("r2"))["granted"]
    ended = store.history("shop/prod")[-1]
    assert (ended["run_id"], ended["state"], ended["released_why"]) == ("r1", "released", "run r1 is failed")
    del runs["r2"]
    assert store.status("shop/prod")[0]["holder"] is None
    assert store.history("shop/prod")[0]["released_why"] == "run r2 is gone"


def _race(store: LockStore, holders: int, rounds: int) -> list[tuple[float, float, str]]:
    """``holders`` threads each take the lock ``rounds`` times and note when they held it."""
    intervals: list[tuple[float, float, str]] = []
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            for n in range(rounds):
                holder = Holder("release_shop", f"{name}-{n}", "prod")
                while not store.acquire("shop/prod", holder)["granted"]:
                    time.sleep(0.005)
                start = time.monotonic()
                time.sleep(0.01)
                intervals.append((start, time.monotonic(), holder.run_id))
                store.release("shop/prod", holder)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(holders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return sorted(intervals)


def _assert_no_overlap(intervals: list[tuple[float, float, str]], expected: int) -> None:
    assert len(intervals) == expected
    for (_, end, who), (start, _, nxt) in itertools.pairwise(intervals):
        assert end <= start, f"{who} still held the lock when {nxt} got it"


def test_concurrent_callers_never_hold_together_on_sqlite(store: LockStore) -> None:
    """Eight threads hammering one lock on SQLite: never two holders at once, nothing lost."""
    _assert_no_overlap(_race(store, 8, 5), 40)


def test_concurrent_callers_never_hold_together_on_postgresql(postgres_server) -> None:
    """The same on PostgreSQL, where transactions really run side by side (the lock row serializes them)."""
    url = postgres_server.create_database("locks_race")
    store = LockStore(create_engine(url, pool_size=10))
    _assert_no_overlap(_race(store, 8, 5), 40)


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RELEASE_MGMT_SERVICE_SECRET", "s" * 40)
    store = ChangeStore(f"sqlite:///{tmp_path / 'changes.db'}")
    app = create_app(store, basic_auth({"alice": ("alice-pass", "admin")}))
    with serve_app(app) as url:
        yield url


def _task(run: str, task_id: str = "prod.lock") -> dict[str, str]:
    token = make_token(TaskIdentity("release_shop", run, task_id))
    return {"Authorization": f"Bearer {token}"}


def test_only_release_tasks_take_locks_and_anyone_signed_in_reads_them(service: str) -> None:
    """Over HTTP: a release task queues as the run its token names; a person gets 403; reads show holders."""
    person = ("alice", "alice-pass")
    body = {"lock": "shop/prod", "dag_id": "release_forged", "run_id": "forged", "environment": "staging"}
    granted = requests.post(f"{service}{LOCKS}/acquire", json=body, headers=_task("r1"), timeout=10)
    assert granted.status_code == 200, granted.text
    holder = granted.json()["result"]["holder"]
    assert (holder["dag_id"], holder["run_id"], holder["environment"]) == ("release_shop", "r1", "prod")  # the token's
    refused = requests.post(f"{service}{LOCKS}/release", json=body, auth=person, timeout=10)
    assert refused.status_code == 403
    assert refused.json()["error"]["detail"] == "admin may not give a lock back"
    other = requests.post(f"{service}{LOCKS}/release", json=body, headers=_task("r2"), timeout=10)
    assert other.json()["result"] is None  # another run cannot give r1's lock back, whatever its body says
    bad = requests.post(f"{service}{LOCKS}/acquire", json={"lock": "Prod Cluster!"}, headers=_task("r1"), timeout=10)
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == "Invalid lock name"
    no_env = requests.post(
        f"{service}{LOCKS}/acquire", json={"lock": "x"}, headers=_task("r1", "preflight"), timeout=10
    )
    assert no_env.json()["error"]["message"] == "Not an environment's release task"
    listed = requests.get(f"{service}{LOCKS}", auth=person, timeout=10).json()["result"]
    assert [(x["lock"], x["holder"]["run_id"]) for x in listed] == [("shop/prod", "r1")]
    one = requests.get(f"{service}{LOCKS}", params={"lock": "shop/prod"}, auth=person, timeout=10).json()["result"]
    assert one["history"][0]["state"] == "held"
    assert requests.get(f"{service}{LOCKS}", timeout=10).status_code == 401


def test_a_waiting_acquire_answers_when_granted_and_refuses_bad_waits(service: str) -> None:
    """``wait_seconds``: the call returns when the lock is this run's (not when the wait ends); a wait that is not
    a number from 0 to 25 is a 400."""
    first = requests.post(f"{service}{LOCKS}/acquire", json={"lock": "w/prod"}, headers=_task("r1"), timeout=10)
    assert first.json()["result"]["granted"]
    threading.Timer(
        0.5,
        lambda: requests.post(f"{service}{LOCKS}/release", json={"lock": "w/prod"}, headers=_task("r1"), timeout=10),
    ).start()
    started = time.monotonic()
    body: dict[str, Any] = {"lock": "w/prod", "wait_seconds": 20}
    second = requests.post(f"{service}{LOCKS}/acquire", json=body, headers=_task("r2"), timeout=30)
    assert second.json()["result"]["granted"]
    assert time.monotonic() - started < 2
    for wait in (-1, 26, "5", True):
        bad = requests.post(
            f"{service}{LOCKS}/acquire", json={"lock": "w/prod", "wait_seconds": wait}, headers=_task("r3"), timeout=10
        )
        assert bad.status_code == 400, wait
