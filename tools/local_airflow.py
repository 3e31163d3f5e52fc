"""A local multi-process Airflow: API server, scheduler, DAG processor and triggerer as separate processes.

LocalExecutor on SQLite in an AIRFLOW_HOME of the caller's choice, or, as the distributed
deployment runs, a database the caller names (PostgreSQL) with CeleryExecutor and a worker
process; settings from deploy/airflow.env (shared with docker-compose.yml), this repository's dags/ and
plugins/, the release definitions of a folder the caller chooses, and SimpleAuthManager users
with passwords the caller sets. The REST helpers talk to it as any user would. Used by
``python -m tools.run_once`` (``scripts/run-local.sh --once``) and by the end-to-end tests; a tool of this
repository, not part of the shipped package.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from release_mgmt.cli.rest import AirflowApi, ApiError
from release_mgmt.errors import ReleaseMgmtError

REPO = Path(__file__).resolve().parents[1]
SHARED_SETTINGS = REPO / "deploy" / "airflow.env"


def shared_settings() -> dict[str, str]:
    """The Airflow settings docker-compose.yml also uses (deploy/airflow.env, KEY=VALUE lines)."""
    settings = {}
    for line in SHARED_SETTINGS.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


USERS = {
    "admin": "admin",
    "alice": "user",
    "bob": "user",
    "carol": "user",
    "dave": "user",
    "victor": "viewer",
    "olga": "op",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalAirflow:
    """Start, use and stop a multi-process Airflow on loopback."""

    def __init__(
        self,
        home: Path,
        releases: Path,
        *,
        users: dict[str, str] | None = None,
        extra_env: dict[str, str] | None = None,
        database: str | None = None,
        celery_broker: str | None = None,
    ) -> None:
        if celery_broker and not database:
            raise ReleaseMgmtError("the Celery executor needs a database URL (its results are kept there)")
        self.home = home
        self.database = database
        self.celery_broker = celery_broker
        self.releases = releases
        self.users = dict(users or USERS)
        self.extra_env = dict(extra_env or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.passwords = {user: f"pw-{user}-{secrets.token_hex(6)}" for user in self.users}
        self.jwt_secret = secrets.token_hex(16)
        #: the release tasks' own secret (never Airflow's JWT secret), shared by every process like the JWT secret
        self.service_secret = secrets.token_hex(32)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.commands: dict[str, list[str]] = {}
        self._clients: dict[str, AirflowApi] = {}

    def env(self) -> dict[str, str]:
        bin_dir = str(Path(sys.executable).parent)
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))},
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            **shared_settings(),
            **self._executor(),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in self.users.items()),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,  # links in approval requests and notifications
            "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,  # one secret for all the processes
            "RELEASE_MGMT_SERVICE_SECRET": self.service_secret,
            "RELEASE_MGMT_RELEASES_DIR": str(self.releases),
            **({"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database} if self.database else {}),
            **self.extra_env,
        }

    def _executor(self) -> dict[str, str]:
        """LocalExecutor, or CeleryExecutor with a worker process as docker-compose.yml runs it."""
        if not self.celery_broker:
            return {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}
        return {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": self.celery_broker,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.database}",
        }

    def start(self) -> LocalAirflow:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps(self.passwords))
        env = self.env()
        migrated = subprocess.run(
            ["airflow", "db", "migrate"], env=env, capture_output=True, text=True, timeout=300, check=False
        )
        if migrated.returncode != 0:
            raise ReleaseMgmtError(f"airflow db migrate failed:\n{(migrated.stdout + migrated.stderr)[-3000:]}")
        # every process shares this AIRFLOW_HOME, so the API server reads task and trigger logs from its files:
        # no log server (which would listen on every interface, port 8793/8794) is started
        for name, args in (
            ("api-server", ["api-server", "--port", str(self.port)]),
            ("scheduler", ["scheduler", "--skip-serve-logs"]),
            ("dag-processor", ["dag-processor"]),
            ("triggerer", ["triggerer", "--skip-serve-logs"]),
            *([("celery-worker", ["celery", "worker", "--skip-serve-logs"])] if self.celery_broker else []),
        ):
            self.commands[name] = args
            self._launch(name, env)
        try:
            self.wait_for(self._healthy, 180, "the API server to answer")
        except BaseException:  # never leave the other processes running behind a failed start
            self.stop()
            raise
        return self

    def _launch(self, name: str, env: dict[str, str]) -> None:
        log = (self.home / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            ["airflow", *self.commands[name]], env=env, stdout=log, stderr=log, start_new_session=True
        )

    def kill(self, name: str) -> None:
        """SIGKILL to one process's whole process group (e.g. the scheduler with its executor's workers), as a
        dying machine or an operator's ``kill -9`` would; :meth:`restart` starts it again."""
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait(timeout=30)

    def restart(self, name: str) -> None:
        self._launch(name, self.env())

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def _healthy(self) -> bool:
        try:
            self.client("admin").send("GET", "/api/v2/monitor/health", auth=False)
        except ReleaseMgmtError:  # not listening yet, or not healthy yet
            return False
        return True

    def wait_for(self, predicate: Callable[[], Any], seconds: float, what: str) -> Any:
        """Poll ``predicate`` until it returns something truthy; fail naming ``what`` and the logs."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            dead = [name for name, proc in self.procs.items() if proc.poll() is not None]
            if dead:  # a process that exits will not come back: say so now, not at the deadline
                log = (self.home / f"{dead[0]}.log").read_text()[-3000:]
                raise ReleaseMgmtError(f"airflow {dead[0]} exited while waiting for {what}:\n{log}")
            value = predicate()
            if value:
                return value
            time.sleep(0.5)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.home.glob("*.log")))
        raise TimeoutError(f"gave up after {seconds}s waiting for {what}\n{logs}")

    def client(self, user: str) -> AirflowApi:
        """A REST client logged in as ``user`` (one per user, token kept)."""
        if user not in self._clients:
            env = {"AIRFLOW_API_URL": self.url, "AIRFLOW_USERNAME": user, "AIRFLOW_PASSWORD": self.passwords[user]}
            self._clients[user] = AirflowApi(env)
        return self._clients[user]

    def token(self, user: str) -> str:
        """A Bearer token for ``user``."""
        return self.client(user).token()

    def request(self, method: str, path: str, user: str, body: Any = None) -> tuple[int, Any]:
        """One REST call as ``user``: (status, decoded JSON, or the error text)."""
        try:
            return 200, self.client(user).send(method, path, body)
        except ApiError as exc:
            return exc.status, exc.detail

    def api(self, method: str, path: str, user: str = "admin", body: Any = None) -> Any:
        status, payload = self.request(method, path, user, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path} as {user}: HTTP {status} {payload}")
        return payload

    def dag_ready(self, dag_id: str) -> bool:
        status, payload = self.request("GET", f"/api/v2/dags/{dag_id}", "admin")
        return status == 200 and not payload.get("is_paused", True)

    def trigger(self, dag_id: str, user: str, conf: dict[str, Any] | None = None) -> str:
        self.wait_for(lambda: self.dag_ready(dag_id), 120, f"DAG {dag_id} to be parsed and unpaused")
        run = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", user, {"logical_date": None, "conf": conf or {}})
        return str(run["dag_run_id"])

    def states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        tis = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=200")
        return {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def wait_state(self, dag_id: str, run_id: str, task_id: str, state: str, seconds: float = 120) -> None:
        self.wait_for(
            lambda: self.states(dag_id, run_id).get(task_id) == state, seconds, f"{task_id} of {run_id} to be {state}"
        )

    def wait_finished(self, dag_id: str, run_id: str, seconds: float = 180) -> str:
        return str(
            self.wait_for(
                lambda: (s := self.run_state(dag_id, run_id)) in ("success", "failed") and s,
                seconds,
                f"run {run_id} to finish",
            )
        )

    def answer(
        self, dag_id: str, run_id: str, task_id: str, *, user: str, option: str, comment: str = ""
    ) -> tuple[int, Any]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"
        return self.request("PATCH", path, user, {"chosen_options": [option], "params_input": {"comment": comment}})

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.api("GET", path)["value"]

    def log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}?full_content=true"
        status, payload = self.request("GET", path, "admin")
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status} {payload}")
        content = payload.get("content") if isinstance(payload, dict) else payload
        if isinstance(content, list):
            return "\n".join(json.dumps(c) if isinstance(c, dict) else str(c) for c in content)
        return str(content)
