"""Measure the release console: server time and first paint in Chromium of every page, with 50 releases and
1,000 runs of history, against the same HTML served as a static file (the baseline: what the browser alone costs).

    .venv/bin/python benchmarks/console.py [--releases 50] [--runs 1000] [--rounds 5]

Builds a throw-away Airflow metadata database (SQLite, migrated), 50 definitions of the sample's shape (3
components, dev/staging/prod, a gate, a change and a shared calendar), 1,000 runs (five of them in progress and
waiting for a gate, a change or a freeze), a deployment record per release, environment and component, and 300
change requests. Serves the console with uvicorn on loopback and opens each page in Debian's Chromium.
Prints one line per page: median server ms, median first-contentful-paint ms, the baseline's, their ratio.
Numbers, not pass/fail: the goal (issue 14) is first paint under 1 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "plugins")]
HOME = Path(tempfile.mkdtemp(prefix="console_bench_"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(HOME / "dags"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
    }
)
NOW = datetime.now(UTC).replace(microsecond=0)
CALENDAR = """\
windows:
  - {name: year-end, kind: freeze, reason: holidays, timezone: Europe/Berlin, start: "2026-12-18 18:00", end: "2027-01-04 06:00", environments: [prod]}
  - {name: weekend, kind: maintenance, reason: low traffic, timezone: Europe/Berlin, cron: "0 22 * * 6", duration: 6h, environments: [prod]}
  - {name: nightly, kind: maintenance, reason: batch gap, timezone: UTC, cron: "0 2 * * *", duration: 2h, environments: [staging]}
"""  # noqa: E501


def definitions(folder: Path, count: int) -> list[str]:
    """``count`` releases of the sample's shape; returns their names."""
    import yaml

    folder.mkdir(parents=True)
    (folder.parent / "calendars").mkdir()
    (folder.parent / "calendars" / "company.yaml").write_text(CALENDAR)
    names = []
    for n in range(count):
        name = f"bench_{n:03d}"
        comps = [
            {
                "name": c,
                "version": "1.0.0",
                "deploy": {"type": "command", "command": f"echo deploy {c} {{{{ version }}}} to {{{{ environment }}}}"},
                "validate": [{"type": "command", "command": "true"}],
                "rollback": {"type": "command", "command": "echo back to {{ previous_version }}"},
            }
            for c in ("db", "api", "web")
        ]
        data = {
            "name": name,
            "owner": f"team-{n % 7}",
            "calendars": ["company"],
            "approver_groups": {"sre": ["alice", "bob", "carol"]},
            "components": comps,
            "environments": [
                {"name": "dev"},
                {"name": "staging"},
                {
                    "name": "prod",
                    "gates": [{"type": "approval", "groups": ["sre"]}],
                    "change": {"type": "normal", "authorizers": {"groups": ["sre"]}},
                },
            ],
        }
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        names.append(name)
    return names


def history(names: list[str], runs: int, store: Any) -> list[tuple[str, str]]:
    """Runs, task states of the ones in progress, deployment records and changes; returns the runs in progress."""
    from airflow.utils.session import create_session

    with create_session() as session:
        pairs = _runs(session, names, runs)
        per = runs // len(names)
        active = [(f"release_{names[i]}", pairs[(i + 1) * per - 1][1]) for i in range(5)]
        _waiting_tasks(session, active)
        _records(session, names, pairs)
    _changes(store, pairs)
    return active


def _runs(session: Any, names: list[str], runs: int) -> list[tuple[str, str]]:
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.models.dagrun import DagRun

    session.add(DagBundleModel(name="dags-folder"))
    session.flush()
    for name in names:
        session.add(DagModel(dag_id=f"release_{name}", is_paused=False, bundle_name="dags-folder"))
    session.flush()
    pairs = []
    per = runs // len(names)
    for i, name in enumerate(names):
        for k in range(per):
            start = NOW - timedelta(hours=6 * (per - k) + i)
            active = k == per - 1 and i < 5
            run_id = f"manual__{start.isoformat()}"
            run = DagRun(
                dag_id=f"release_{name}",
                run_id=run_id,
                run_type="manual",
                state="running" if active else ("failed" if k % 9 == 4 else "success"),
                run_after=start,
                start_date=start,
                triggering_user_name="alice",
                conf={"version_web": f"1.{k}.0"},
            )
            run.end_date = None if active else start + timedelta(minutes=12)
            session.add(run)
            pairs.append((f"release_{name}", run_id))
    session.flush()
    return pairs


def _waiting_tasks(session: Any, active: list[tuple[str, str]]) -> None:
    """One waiting task per run in progress: a gate, a change, a freeze, an entry, a deploy."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import insert

    waiting = ["prod.gate_approval", "prod.change_authorized", "prod.deploy_db", "prod.enter", "dev.deploy_api"]
    for (dag, run), task in zip(active, waiting, strict=True):
        state = "awaiting_input" if "gate" in task else "deferred"
        session.execute(
            insert(TaskInstance.__table__).values(
                id=_uuid(), task_id=task, dag_id=dag, run_id=run, map_index=-1, state=state, try_number=1,
                pool="default_pool", queue="default", priority_weight=1, max_tries=0, hostname="",
                unixname="", operator="BenchOperator", pool_slots=1, custom_operator_name="",
            )
        )  # fmt: skip


def _records(session: Any, names: list[str], pairs: list[tuple[str, str]]) -> None:
    """Three recorded deployments per release, environment and component."""
    from airflow.models.asset import AssetEvent, AssetModel

    for name in names:
        for env in ("dev", "staging", "prod"):
            for comp in ("db", "api", "web"):
                asset = AssetModel(name=f"release_mgmt/{name}/{env}/{comp}", uri=f"release-mgmt://{name}/{env}/{comp}")
                session.add(asset)
                session.flush()
                for k in range(3):
                    extra = {"version": f"1.{k}.0", "run_id": pairs[k][1], "deployed_at": NOW.isoformat()}
                    session.add(AssetEvent(asset_id=asset.id, extra=extra, timestamp=NOW - timedelta(days=3 - k)))


def _changes(store: Any, pairs: list[tuple[str, str]]) -> None:
    for n in range(300):
        dag, run = pairs[n * 3]
        fields = {
            "short_description": f"Release {dag} to prod",
            "u_airflow_dag_id": dag,
            "u_airflow_run_id": run,
            "u_requested_by": "alice",
            "u_authorizers": "alice,bob,carol",
            "description": "x" * 400,
        }
        change = store.create(fields, "release_mgmt")
        store.update(change["sys_id"], {"state": "-4", "work_notes": "assessed"}, "release_mgmt")


def _uuid() -> Any:
    import uuid

    return uuid.uuid4()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--releases", type=int, default=50)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from airflow.utils.db import initdb

    started = time.perf_counter()
    initdb()
    from release_mgmt.change_service.store import ChangeStore
    from release_mgmt.console.app import Settings, Viewer, create_app
    from release_mgmt.console.sources import Sources

    folder = HOME / "include" / "releases"
    names = definitions(folder, args.releases)
    store = ChangeStore(f"sqlite:///{HOME / 'changes.db'}")
    active = history(names, args.runs, store)
    print(f"set-up: {args.releases} releases, {args.runs} runs, 300 changes in {time.perf_counter() - started:.0f}s")

    async def everyone(request: Any) -> Viewer:
        return Viewer("bob", "admin", lambda dag_id: True, "")

    app = create_app(everyone, Settings(Sources(lambda: folder, lambda: store), "/change-service"))
    pages = {
        "releases": "/",
        "one release": f"/dags/release_{names[0]}",
        "run in progress": f"/runs/{active[0][0]}/{active[0][1]}",
        "calendar month": "/calendar?view=month&start=2026-12-01",
        "calendar week": "/calendar?view=week&start=2026-12-21",
        "changes": "/changes",
        "one change": f"/changes/{store.query([], 1)[0]['sys_id']}",
    }
    measure(app, pages, args.rounds)


def measure(app: Any, pages: dict[str, str], rounds: int) -> None:
    """Server ms (HTTP GET) and first-contentful-paint ms in Chromium, against the same HTML served static."""
    import requests
    from fastapi.responses import HTMLResponse
    from playwright.sync_api import sync_playwright

    from tests.servers import serve_app

    static: dict[str, str] = {}

    @app.get("/static-copy/{key}")
    def copy(key: str) -> HTMLResponse:
        return HTMLResponse(static[key])

    with serve_app(app) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
        print(f"{'page':<17} {'server ms':>9} {'paint ms':>9} {'static paint':>12} {'ratio':>6} {'KiB':>5}")
        for label, path in pages.items():
            server, paint, base = [], [], []
            body = ""
            for _ in range(rounds + 1):
                start = time.perf_counter()
                answer = requests.get(url + path, timeout=60)
                server.append((time.perf_counter() - start) * 1000)
                assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
                body = answer.text
            static[label] = body
            for _ in range(rounds):
                paint.append(_first_paint(browser, url + path))
                base.append(_first_paint(browser, f"{url}/static-copy/{label}"))
            s, p, b = statistics.median(server[1:]), statistics.median(paint), statistics.median(base)
            print(f"{label:<17} {s:>9.0f} {p:>9.0f} {b:>12.0f} {p / b:>6.2f} {len(body) / 1024:>5.0f}")
        browser.close()


def _first_paint(browser: Any, url: str) -> float:
    page = browser.new_page()
    page.goto(url, wait_until="load")
    value = page.evaluate(
        """() => new Promise(resolve => {
            new PerformanceObserver(list => {
                const paint = list.getEntriesByName("first-contentful-paint")[0];
                if (paint) resolve(paint.startTime);
            }).observe({type: "paint", buffered: true});
            setTimeout(() => resolve(-1), 5000);
        })"""
    )
    page.close()
    return float(value)


if __name__ == "__main__":
    main()
