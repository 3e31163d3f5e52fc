"""Measure the environment-lock store: what one acquire/release costs, and how many hand-overs per second
one contended lock manages, on SQLite and on PostgreSQL (a throw-away cluster from Debian's package).

    .venv/bin/python benchmarks/lock_service.py [--rounds 200] [--threads 8]

Prints one line per database and measurement. Numbers, not pass/fail: compare runs on the same machine.
The wait a run sees after the holder gives back is dominated by the trigger's poll interval (2 s,
growing to 30 s), not by these costs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "plugins")]

from sqlalchemy import create_engine  # noqa: E402

from release_mgmt.change_service.locks import Holder, LockStore  # noqa: E402


def single(store: LockStore, rounds: int) -> list[float]:
    """Milliseconds per uncontended acquire + release."""
    times = []
    for n in range(rounds):
        holder = Holder("release_bench", f"single-{n}", "prod")
        start = time.perf_counter()
        store.acquire("bench/single", holder)
        store.release("bench/single", holder)
        times.append((time.perf_counter() - start) * 1000)
    return times


def contended(store: LockStore, threads: int, rounds: int) -> tuple[float, int]:
    """Hand-overs per second of one lock that ``threads`` callers take in turn, polling every 1 ms."""
    done = [0]

    def work(name: str) -> None:
        for n in range(rounds):
            holder = Holder("release_bench", f"{name}-{n}", "prod")
            while not store.acquire("bench/contended", holder)["granted"]:
                time.sleep(0.001)
            store.release("bench/contended", holder)
            done[0] += 1

    workers = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return done[0] / (time.perf_counter() - start), done[0]


def report(name: str, store: LockStore, rounds: int, threads: int) -> None:
    times = sorted(single(store, rounds))
    p95 = times[int(len(times) * 0.95) - 1]
    print(f"{name:10} acquire+release, no contention: median {statistics.median(times):.2f} ms, p95 {p95:.2f} ms")
    rate, total = contended(store, threads, max(1, rounds // threads))
    print(f"{name:10} one lock, {threads} callers: {rate:.0f} hand-overs/s ({total} in all)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        report("sqlite", LockStore(create_engine(f"sqlite:///{folder}/locks.db")), args.rounds, args.threads)
    from tests.servers import postgres

    with postgres() as server:
        engine = create_engine(server.create_database("bench"), pool_size=args.threads + 2)
        report("postgresql", LockStore(engine), args.rounds, args.threads)


if __name__ == "__main__":
    main()
