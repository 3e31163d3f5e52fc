"""Airflow's distributed engine without containers: PostgreSQL (Debian's package) as the metadata and change
database, Redis (Debian's package) as the Celery broker, and API server, scheduler, DAG processor, triggerer
and a Celery worker as separate processes with the settings docker-compose.yml uses (deploy/airflow.env):
CeleryExecutor, as there, with a worker running several tasks at once.

Everything goes through the REST API, as the users of a shared deployment would do it.
"""

from __future__ import annotations

import itertools
import secrets
import time
from pathlib import Path

import pytest
import yaml

from release_mgmt.records.audit import records_from_log
from release_mgmt.reports import evidence
from tests.helpers import command, minimal_definition, write_definition
from tests.release_runs import audit_problems, gated_sample, release_mgmt_cli, served_version, stop_sample
from tools.local_airflow import REPO, LocalAirflow, shared_settings
from tools.run_once import drive

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pg_airflow(postgres_server, redis_server, tmp_path_factory: pytest.TempPathFactory):
    """A multi-process Airflow with a Celery worker, whose every database is on PostgreSQL."""
    base = tmp_path_factory.mktemp("pg_airflow")
    (base / "releases").mkdir()
    server = LocalAirflow(
        base / "home",
        base / "releases",
        database=postgres_server.create_database("airflow"),
        celery_broker=redis_server,
        extra_env={  # as docker-compose.yml sets them
            "RELEASE_MGMT_CHANGE_DB": postgres_server.create_database("release_mgmt_changes"),
            "RELEASE_MGMT_SERVICE_SECRET": secrets.token_hex(16),
        },
    ).start()
    try:
        yield server
    finally:
        server.stop()


def test_settings_are_those_of_the_compose_file(pg_airflow) -> None:
    """The processes run on PostgreSQL with the shared settings and the compose file's executor, whose worker
    runs several tasks at once."""
    env = pg_airflow.env()
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["x-airflow-common"]["environment"]
    assert {k: env[k] for k in shared_settings()} == shared_settings()
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__CORE__EXECUTOR"] == compose["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].split(":")[0] == compose["AIRFLOW__CELERY__BROKER_URL"].split(":")[0]
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3: both name the driver that is installed
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
    assert compose["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
    assert int(env["AIRFLOW__CORE__PARALLELISM"]) > 1
    workers = pg_airflow.api("GET", "/api/v2/monitor/health")
    assert workers["scheduler"]["status"] == "healthy"


def test_sample_release_through_the_rest_api(pg_airflow, tmp_path: Path) -> None:
    """The sample release (prod gate and change included) triggered, approved and authorized over REST by
    other users: every environment runs the new version, and no state was left in a local file."""
    root = tmp_path / "environments"
    (pg_airflow.releases.parent / "sample_service").symlink_to(REPO / "include/sample_service")
    data, ports = gated_sample(root)
    write_definition(pg_airflow.releases, "sample_webshop.yaml", data)
    dag = "release_sample_webshop"
    try:
        run = pg_airflow.trigger(dag, "admin", {"version_web": "1.3.0"})
        assert drive(pg_airflow, dag, run, 600) == "success"
        assert {env: served_version(port) for env, port in ports.items()} == dict.fromkeys(ports, "1.3.0")
        gate = pg_airflow.xcom(dag, run, "prod.gate_approval")
        assert gate["decision"] == "approved"
        assert "admin" not in gate["approvers"]
        change = pg_airflow.xcom(dag, run, "prod.change_open")
        closed = pg_airflow.api("GET", f"/change-service/api/now/table/change_request/{change['sys_id']}")["result"]
        assert (closed["state"], closed["close_code"]) == ("3", "successful")
        # change records and the service's secret were not kept in files of one machine
        leftovers = sorted(p.name for p in pg_airflow.home.glob("release_mgmt*"))
        assert leftovers == []
    finally:
        stop_sample(root, ports)


def _lock_release(name: str, journal: Path, environments: list[dict], **top) -> dict:
    """A release whose deploy notes when it starts and ends (3 s apart) in ``journal``."""

    def note(what: str) -> str:
        return f"echo {{{{ run_id }}}} {{{{ environment }}}} {name} {what} $(date +%s.%N) >> {journal}"

    data = minimal_definition(name, environments=environments, **top)
    data["components"][0]["deploy"] = command(f"{note('start')} && sleep 3 && {note('end')}")
    data["components"][0]["validate"] = []
    return data


def _intervals(journal: Path) -> dict[tuple[str, str, str], list[float]]:
    """(release, run, environment) -> [start, end] of its deploy."""
    found: dict[tuple[str, str, str], list[float]] = {}
    for line in journal.read_text().splitlines():
        run, env, release, what, moment = line.split()
        found.setdefault((release, run, env), [0.0, 0.0])[0 if what == "start" else 1] = float(moment)
    return found


def _finish_watching_locks(airflow, runs: list[tuple[str, str]], seconds: float = 300) -> set[str]:
    """Wait for every run to finish; the lock tasks seen deferred (waiting on the triggerer) meanwhile."""
    deferred: set[str] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for dag, run in runs:
            deferred |= {
                f"{run} {t}" for t, s in airflow.states(dag, run).items() if t.endswith(".lock") and s == "deferred"
            }
        if all(airflow.run_state(dag, run) in ("success", "failed") for dag, run in runs):
            break
        time.sleep(1)
    return deferred


def _lock_waits(airflow, runs: list[tuple[str, str]]) -> list[tuple[float, str, str, str]]:
    """(seconds waited, dag, run, environment) of every lock task, from the audit lines of its own log,
    checking that each lock and unlock task logged complete, expected events."""
    waits = []
    for dag, run in runs:
        for task in [t for t in airflow.states(dag, run) if t.endswith("lock")]:
            records, malformed = records_from_log(airflow.log(dag, run, task))
            assert not malformed
            assert not audit_problems(records), audit_problems(records)
            events = [r["event"] for r in records]
            if task.endswith(".unlock"):
                assert events == ["lock.released"]
                continue
            waited = records[-1]["details"]["waited_seconds"]
            assert events == (["lock.waiting", "lock.acquired"] if waited > 0 else ["lock.acquired"])
            waits.append((waited, dag, run, task.split(".")[0]))
    return sorted(waits)


def test_runs_sharing_an_environment_deploy_one_at_a_time(pg_airflow, tmp_path: Path) -> None:
    """Two runs of one release (max_active_runs 2) and a run of another release sharing prod's lock, started
    together: deploys into the same environment never overlap; the later runs wait deferred (no worker)
    and go on when the lock is given back; every run succeeds."""
    journal = tmp_path / "deploys.log"
    journal.touch()
    shared = {"name": "prod", "lock": "shared-prod", "lock_timeout": "10m"}
    write_definition(
        pg_airflow.releases,
        "locka.yaml",
        _lock_release("locka", journal, [{"name": "dev"}, shared], max_active_runs=2),
    )
    write_definition(pg_airflow.releases, "lockb.yaml", _lock_release("lockb", journal, [shared]))
    for dag in ("release_locka", "release_lockb"):
        pg_airflow.wait_for(lambda dag=dag: pg_airflow.dag_ready(dag), 120, f"{dag} to be parsed")
    runs = [
        ("release_locka", pg_airflow.trigger("release_locka", "alice")),
        ("release_locka", pg_airflow.trigger("release_locka", "bob")),
        ("release_lockb", pg_airflow.trigger("release_lockb", "carol")),
    ]
    deferred = _finish_watching_locks(pg_airflow, runs)
    assert [pg_airflow.run_state(dag, run) for dag, run in runs] == ["success"] * 3
    intervals = _intervals(journal)
    assert len(intervals) == 5  # two runs in dev, three in prod
    for env in ("dev", "prod"):
        spans = sorted(v for (_, _, e), v in intervals.items() if e == env)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start, f"two deploys into {env} overlapped: {spans}"
    assert deferred, "no run ever waited for a lock: the test did not make runs meet"
    waits = _lock_waits(pg_airflow, runs)
    assert waits[-1][0] >= 3  # someone waited at least one whole deploy
    status = pg_airflow.api("GET", "/change-service/api/release_mgmt/locks")["result"]
    assert {s["lock"]: s["holder"] for s in status} == {"locka/dev": None, "shared-prod": None}
    history = pg_airflow.api("GET", "/change-service/api/release_mgmt/locks?lock=shared-prod")["result"]["history"]
    assert sorted(h["released_why"] for h in history) == ["prod done"] * 3
    # the longest waiter's evidence report and the CLI tell an auditor and an operator the same
    _, dag, run, env = waits[-1]
    report = evidence.fetch(pg_airflow.client("admin"), dag, run)
    lock_events = [e["event"] for e in report["environments"][env]["lock"]]
    assert lock_events == ["lock.waiting", "lock.acquired", "lock.released"]
    assert "waited behind" in evidence.to_markdown(report)
    shown = release_mgmt_cli(pg_airflow, "alice", "locks", "shared-prod")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == "shared-prod: held by nobody"
    assert shown.stdout.count(": prod done") == 3


def test_a_run_failed_while_holding_the_lock_frees_it(pg_airflow, tmp_path: Path) -> None:
    """An operator marks a run failed in the middle of its deploy (its unlock never runs): the run waiting in
    line gets the lock, because the service sees in Airflow's database that the holder's run ended."""
    data = minimal_definition(
        "lockc",
        max_active_runs=2,
        parameters={"hold": {"type": "integer", "default": 1}},
        environments=[{"name": "prod", "lock": "stale-prod"}],
    )
    data["components"][0]["deploy"] = command("sleep {{ params.hold }}")
    write_definition(pg_airflow.releases, "lockc.yaml", data)
    dag = "release_lockc"
    stuck = pg_airflow.trigger(dag, "alice", {"hold": 600})
    pg_airflow.wait_state(dag, stuck, "prod.deploy_api", "running")
    waiting = pg_airflow.trigger(dag, "bob")
    pg_airflow.wait_state(dag, waiting, "prod.lock", "deferred")
    pg_airflow.api("PATCH", f"/api/v2/dags/{dag}/dagRuns/{stuck}", "admin", {"state": "failed"})
    assert pg_airflow.wait_finished(dag, waiting, 180) == "success"
    assert pg_airflow.run_state(dag, stuck) == "failed"
    history = pg_airflow.api("GET", "/change-service/api/release_mgmt/locks?lock=stale-prod")["result"]["history"]
    why = {h["run_id"]: h["released_why"] for h in history}
    assert why == {stuck: f"run {stuck} is failed", waiting: "prod done"}


def _gate_open(airflow, dag: str, run: str) -> bool:
    path = f"/api/v2/dags/{dag}/dagRuns/{run}/taskInstances/prod.gate_approval/-1/hitlDetails"
    status, detail = airflow.request("GET", path, "admin")
    waiting = airflow.states(dag, run).get("prod.gate_approval") == "awaiting_input"
    return status == 200 and waiting and not detail.get("response_received")


def _approve(airflow, dag: str, run: str, user: str) -> None:
    airflow.wait_for(lambda: _gate_open(airflow, dag, run), 120, f"the prod gate of {run}")
    time.sleep(3)  # Airflow 3.3 fails a task resumed within about a second of parking (README, approval gates)
    assert airflow.answer(dag, run, "prod.gate_approval", user=user, option="Approve")[0] == 200


def test_an_older_run_never_deploys_over_a_newer_one(pg_airflow, tmp_path: Path) -> None:
    """Two runs at once, both waiting for their prod approval; the newer one is approved and deploys first. When
    the older one is approved it refuses to put its older version back, and says so; prod keeps the newer version.
    (Runs that meet with the same version go one after the other: see the lock test above.)"""
    deployed = tmp_path / "prod_version"
    data = minimal_definition(
        "lockd",
        max_active_runs=2,
        approver_groups={"sre": ["alice", "bob"]},
        environments=[{"name": "prod", "gates": [{"type": "approval", "groups": ["sre"]}]}],
    )
    data["components"][0]["deploy"] = command(f"echo {{{{ version }}}} > {deployed}")
    write_definition(pg_airflow.releases, "lockd.yaml", data)
    dag = "release_lockd"
    older = pg_airflow.trigger(dag, "admin", {"version_api": "1.1.0"})
    newer = pg_airflow.trigger(dag, "admin", {"version_api": "1.2.0"})
    _approve(pg_airflow, dag, newer, "alice")
    assert pg_airflow.wait_finished(dag, newer) == "success"
    _approve(pg_airflow, dag, older, "bob")
    assert pg_airflow.wait_finished(dag, older) == "failed"
    assert deployed.read_text().strip() == "1.2.0"
    assert pg_airflow.states(dag, older)["prod.deploy_api"] == "failed"
    records, _ = records_from_log(pg_airflow.log(dag, older, "prod.deploy_api"))
    refused = next(r for r in records if r["event"] == "deploy.superseded")
    assert (refused["version"], refused["details"]["deployed_version"]) == ("1.1.0", "1.2.0")
    assert refused["details"]["deployed_by_run"] == newer
