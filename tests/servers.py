"""Real servers the tests start on loopback: OpenSSH's sshd (from Debian's openssh-server), PostgreSQL
(Debian's postgresql), Redis (Debian's redis-server), scripted HTTP servers, an SMTP server (aiosmtpd), a
Kubernetes apps/v1 API and a fault-injecting proxy."""

from __future__ import annotations

import contextlib
import getpass
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.helpers import free_port


@dataclass(frozen=True)
class SSHServer:
    """A running sshd that accepts ``user`` with ``client_key``."""

    port: int
    user: str
    client_key: Path
    folder: Path

    def connection(self, **extra: object) -> str:
        """An Airflow connection (JSON, for an AIRFLOW_CONN_* variable) to this server."""
        return json.dumps(
            {
                "conn_type": "ssh",
                "host": "127.0.0.1",
                "port": self.port,
                "login": self.user,
                "extra": {"key_file": str(self.client_key), "no_host_key_check": "true", **extra},
            }
        )


def _wait_for_port(port: int, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds}s")


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30)


@contextlib.contextmanager
def sshd(folder: Path) -> Iterator[SSHServer]:
    """Start sshd on a free loopback port with a temporary host key and one authorized client key."""
    binary = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(binary).exists():
        raise RuntimeError("sshd not found: install Debian's openssh-server (.ci/run does)")
    folder.mkdir(parents=True, exist_ok=True)
    _keygen(folder / "host_key")
    _keygen(folder / "client_key")
    shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\nPidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
        "PrintMotd no\nLogLevel VERBOSE\n"
    )
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege separation directory
    log = (folder / "sshd.log").open("w")
    proc = subprocess.Popen([binary, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
    try:
        _wait_for_port(port)
        yield SSHServer(port, getpass.getuser(), folder / "client_key", folder)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


@dataclass(frozen=True)
class PostgresServer:
    """A running PostgreSQL on loopback; the ``postgres`` role connects without a password."""

    port: int
    folder: Path
    run_as: str | None

    def url(self, database: str) -> str:
        """A SQLAlchemy URL of ``database`` (psycopg2)."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create ``name`` (fresh) and return its URL."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.url(name)


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("PostgreSQL not found: install Debian's postgresql (.ci/run does)")
    return Path(initdb).parent


@contextlib.contextmanager
def postgres() -> Iterator[PostgresServer]:
    """Start a throw-away PostgreSQL cluster on a free loopback port (as user postgres when run as root,
    since PostgreSQL refuses to run as root); stopped and deleted afterwards."""
    import os
    import pwd
    import signal
    import tempfile

    binaries = _postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="release_mgmt_pg_"))  # not under pytest's 0700 root-owned tree
    run_as = "postgres" if os.geteuid() == 0 else None
    if run_as:
        owner = pwd.getpwnam(run_as)
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    as_user: dict[str, Any] = {"user": run_as} if run_as else {}
    data = folder / "data"
    subprocess.run(
        [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
        timeout=120,
        **as_user,
    )
    port = free_port()
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(folder),
        "max_connections": "300",
        "fsync": "off",  # a throw-away cluster: speed over durability
        "synchronous_commit": "off",
        "full_page_writes": "off",
    }
    args = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
    log = (folder / "postgres.log").open("w")
    proc = subprocess.Popen(
        [str(binaries / "postgres"), "-D", str(data), *args],
        stdout=log,
        stderr=log,
        start_new_session=True,
        **as_user,
    )
    try:
        _wait_for_port(port, 60)
        yield PostgresServer(port, folder, run_as)
    finally:
        proc.send_signal(signal.SIGINT)  # fast shutdown: disconnects clients
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def redis() -> Iterator[str]:
    """Start redis-server (Debian's redis-server) on a free loopback port, nothing persisted; yields its URL."""
    import tempfile

    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found: install Debian's redis-server (.ci/run does)")
    folder = Path(tempfile.mkdtemp(prefix="release_mgmt_redis_"))
    port = free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)]
    log = (folder / "redis.log").open("w")
    proc = subprocess.Popen([binary, *args], stdout=log, stderr=log, start_new_session=True)
    try:
        _wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Reply:
    """One scripted HTTP answer."""

    status: int = 200
    body: object = ""
    headers: dict[str, str] | None = None
    delay: float = 0.0


@dataclass
class Seen:
    """One request the scripted server received."""

    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    at: float


class ScriptedHTTP:
    """A real HTTP server on loopback answering from a script: queued replies per path, then a default."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.queues: dict[str, list[Reply]] = {}
        self.defaults: dict[str, Reply] = {}
        self.seen: list[Seen] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                with lock:
                    outer.seen.append(Seen(self.command, self.path, body, dict(self.headers), time.monotonic()))
                    queue = outer.queues.get(path) or []
                    reply = queue.pop(0) if queue else outer.defaults.get(path, Reply(404, {"error": "no script"}))
                if reply.delay:
                    time.sleep(reply.delay)
                data = (
                    reply.body
                    if isinstance(reply.body, bytes)
                    else (reply.body.encode() if isinstance(reply.body, str) else json.dumps(reply.body).encode())
                )
                self.send_response(reply.status)
                for key, value in (reply.headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def script(self, path: str, *replies: Reply, default: Reply | None = None) -> None:
        """Answer ``path`` with ``replies`` in order, then ``default``."""
        self.queues[path] = list(replies)
        if default is not None:
            self.defaults[path] = default

    def connection(self, **extra: object) -> str:
        """An Airflow HTTP connection (JSON) with this server as base URL."""
        return json.dumps(
            {
                "conn_type": "http",
                "host": "127.0.0.1",
                "port": self.port,
                "schema": "http",
                "login": "deployer",
                "password": "s3cr3t-pa55",
                "extra": extra,
            }
        )

    def __enter__(self) -> ScriptedHTTP:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeKubernetes:
    """A local server of the apps/v1 Deployment endpoints the kubernetes step uses (GET, PATCH).

    A PATCH that changes an image bumps the generation and starts a rollout that completes
    ``rollout_seconds`` later, unless the image is in ``stuck_images``: then the Deployment's
    Progressing condition turns False with ProgressDeadlineExceeded after ``deadline_seconds``.
    Requests must carry ``Authorization: Bearer <token>``.
    """

    def __init__(self, token: str = "t0ken-s3cret", rollout_seconds: float = 0.5, deadline_seconds: float = 1.0):
        import threading
        from http.server import ThreadingHTTPServer

        self.token = token
        self.rollout_seconds = rollout_seconds
        self.deadline_seconds = deadline_seconds
        self.stuck_images: set[str] = set()
        self.deployments: dict[tuple[str, str], dict] = {}
        self.patches: list[dict] = []
        handler = type("Handler", (_KubernetesHandler,), {"fake": self, "lock": threading.Lock()})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, namespace: str, name: str, image: str, replicas: int = 3, container: str = "app") -> None:
        """A Deployment that is fully rolled out with ``image``."""
        self.deployments[(namespace, name)] = {
            "namespace": namespace,
            "name": name,
            "container": container,
            "image": image,
            "replicas": replicas,
            "generation": 1,
            "changed_at": 0.0,
            "complete": True,
        }

    def image(self, namespace: str, name: str) -> str:
        return self.deployments[(namespace, name)]["image"]

    def _apply(self, dep: dict, body: dict) -> None:
        for container in body["spec"]["template"]["spec"]["containers"]:
            if container["name"] == dep["container"] and container["image"] != dep["image"]:
                dep.update(
                    image=container["image"],
                    generation=dep["generation"] + 1,
                    changed_at=time.monotonic(),
                    complete=False,
                )

    def _view(self, dep: dict) -> dict:
        age = time.monotonic() - dep["changed_at"]
        stuck = dep["image"] in self.stuck_images
        done = dep["complete"] or (not stuck and age >= self.rollout_seconds)
        replicas = dep["replicas"]
        progressing = {
            "type": "Progressing",
            "status": "True",
            "reason": "NewReplicaSetAvailable" if done else "ReplicaSetUpdated",
            "message": "rollout",
        }
        if stuck and age >= self.deadline_seconds:
            progressing = {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": f'ReplicaSet "{dep["name"]}-new" has timed out progressing.',
            }
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": dep["name"], "namespace": dep["namespace"], "generation": dep["generation"]},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": dep["name"]}},
                "progressDeadlineSeconds": 600,
                "template": {
                    "metadata": {"labels": {"app": dep["name"]}},
                    "spec": {"containers": [{"name": dep["container"], "image": dep["image"]}]},
                },
            },
            "status": {
                "observedGeneration": dep["generation"],
                "replicas": replicas,
                "updatedReplicas": replicas if done else 1,
                "availableReplicas": replicas if done else replicas - 1,
                "conditions": [progressing],
            },
        }

    def kube_config(self) -> dict:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "test",
            "clusters": [{"name": "local", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "deployer", "user": {"token": self.token}}],
            "contexts": [{"name": "test", "context": {"cluster": "local", "user": "deployer"}}],
        }

    def connection(self) -> str:
        """An Airflow Kubernetes connection (JSON) whose kube_config points here."""
        return json.dumps({"conn_type": "kubernetes", "extra": {"kube_config": json.dumps(self.kube_config())}})

    def __enter__(self) -> FakeKubernetes:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _KubernetesHandler(BaseHTTPRequestHandler):
    """Requests to a FakeKubernetes (GET and PATCH of apps/v1 Deployments); ``fake`` is set per server."""

    fake: FakeKubernetes
    lock: Any

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _target(self) -> tuple[str, str] | None:
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if len(parts) == 7 and parts[:4] == ["apis", "apps", "v1", "namespaces"] and parts[5] == "deployments":
            return parts[4], parts[6]
        return None

    def _handle(self, patch: bool) -> None:
        if self.headers.get("Authorization") != f"Bearer {self.fake.token}":
            self._send(401, _status(401, "Unauthorized", "Unauthorized"))
            return
        key = self._target()
        with self.lock:
            dep = self.fake.deployments.get(key) if key else None
            if dep is None:
                self._send(404, _status(404, "NotFound", f"deployments.apps {key} not found"))
                return
            if patch:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.fake.patches.append(body)
                self.fake._apply(dep, body)
            self._send(200, self.fake._view(dep))

    def do_GET(self) -> None:
        self._handle(patch=False)

    def do_PATCH(self) -> None:
        self._handle(patch=True)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def _status(code: int, reason: str, message: str) -> dict:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


@contextlib.contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port (real HTTP); yields its base URL."""
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        _wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class FaultProxy:
    """A TCP proxy on loopback in front of an HTTP server, that can misbehave on purpose.

    Each request takes the next planned fault (``plan``), or passes through:
    ``"429"`` answers 429 with Retry-After: 1 (not forwarded); ``"500"`` answers 500 (not forwarded); ``"409"``
    answers 409, a refusal no retry changes (not forwarded);
    ``"slow"`` forwards, then holds the answer ``delay`` seconds (past the client's timeout);
    ``"drop"`` forwards (the server commits), then closes the connection without an answer.
    ``seen`` lists (method, path, fault) per request.
    """

    def __init__(self, backend_port: int, delay: float = 3.0) -> None:
        import threading

        self.backend_port = backend_port
        self.delay = delay
        self.plan: list[str] = []
        self.seen: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        import threading

        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        with client:
            request = _read_http(client)
            if not request:
                return
            line = request.split(b"\r\n", 1)[0].decode(errors="replace").split()
            with self._lock:
                fault = self.plan.pop(0) if self.plan else "pass"
                self.seen.append((line[0], line[1], fault))
            if fault in ("409", "429", "500"):
                body = json.dumps({"error": {"message": f"injected {fault}", "detail": ""}, "status": "failure"})
                extra = "Retry-After: 1\r\n" if fault == "429" else ""
                client.sendall(
                    f"HTTP/1.1 {fault} Injected\r\n{extra}Content-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}".encode()
                )
                return
            answer = self._forward(request)
            if fault == "drop":
                return  # the server committed; the client never hears of it
            if fault == "slow":
                time.sleep(self.delay)
            with contextlib.suppress(OSError):
                client.sendall(answer)

    def _forward(self, request: bytes) -> bytes:
        head, _, body = request.partition(b"\r\n\r\n")
        lines = [h for h in head.split(b"\r\n") if not h.lower().startswith(b"connection:")]
        with socket.create_connection(("127.0.0.1", self.backend_port), timeout=30) as backend:
            backend.sendall(b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + body)
            chunks = []
            while chunk := backend.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


def _read_http(sock: socket.socket) -> bytes:
    """One HTTP request (headers and a Content-Length body) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(h.split(b":", 1)[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")), 0
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


@dataclass
class Mail:
    """One message the SMTP server accepted."""

    sender: str
    recipients: list[str]
    message: Any  # email.message.EmailMessage

    def part(self, subtype: str) -> str:
        """The text of the body part of this subtype (plain, html)."""
        body = self.message.get_body(preferencelist=(subtype,))
        return "" if body is None else str(body.get_content())


class SMTPServer:
    """A real SMTP server on loopback (aiosmtpd) that requires AUTH with ``login`` (over plain SMTP on loopback,
    which aiosmtpd allows only when told) and keeps every message it accepts."""

    def __init__(self, login: tuple[str, str] = ("release-bot", "smtp-s3cret-pw")) -> None:
        import email
        import email.policy
        import threading

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.mails: list[Mail] = []
        self.logins: list[str] = []
        lock = threading.Lock()
        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
                with lock:
                    outer.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), parsed))
                return "250 OK"

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            good = (data.login.decode(), data.password.decode()) == login
            if good:
                outer.logins.append(data.login.decode())
            return AuthResult(success=good)

        self.port = free_port()
        self.login = login
        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=authenticator,
            auth_required=True,
            auth_require_tls=False,
        )

    def connection(self, **extra: object) -> str:
        """An Airflow SMTP connection (JSON) to this server."""
        return json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": self.port,
                "login": self.login[0],
                "password": self.login[1],
                "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "release-bot@example.com", **extra},
            }
        )

    def wait_for(self, count: int, seconds: float = 30) -> list[Mail]:
        deadline = time.monotonic() + seconds
        while len(self.mails) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.mails)

    def __enter__(self) -> SMTPServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


class OciRegistry:
    """A local server of the OCI distribution API calls a version source makes: ``GET /v2/<name>/tags/list``
    (paged with ``n`` and ``last``, a ``Link: <...>; rel="next"`` header while more remain) and ``HEAD``/``GET
    /v2/<name>/manifests/<tag>`` with ``Docker-Content-Digest`` (the SHA-256 of the manifest's bytes). Auth as a
    registry does it: Basic credentials, or (``bearer=True``) a 401 ``WWW-Authenticate: Bearer`` challenge naming
    ``/token``, which trades Basic credentials for a token."""

    def __init__(  # noqa: C901 -- the request handler class lives inside, as in ScriptedHTTP
        self, login: str = "puller", password: str = "r3gistry-pa55", bearer: bool = False
    ) -> None:
        import hashlib
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        self.images: dict[str, dict[str, bytes]] = {}
        self.seen: list[tuple[str, str, str]] = []  # method, path, Authorization
        outer, token = self, "tok-" + password[::-1]
        basic = "Basic " + __import__("base64").b64encode(f"{login}:{password}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _authorized(self) -> bool:
                given = self.headers.get("Authorization", "")
                if (bearer and given == f"Bearer {token}") or (not bearer and given == basic):
                    return True
                challenge = (
                    f'Bearer realm="{outer.url}/token",service="registry.test"' if bearer else 'Basic realm="registry"'
                )
                error = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})
                self._send(401, error.encode(), {"WWW-Authenticate": challenge})
                return False

            def _answer(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                outer.seen.append((self.command, self.path, self.headers.get("Authorization", "")))
                if url.path == "/token":
                    ok = self.headers.get("Authorization") == basic
                    body = json.dumps({"token": token} if ok else {"error": "denied"}).encode()
                    return self._send(200 if ok else 401, body)
                if not self._authorized():
                    return None
                parts = url.path.split("/")
                if url.path.endswith("/tags/list"):
                    name = "/".join(parts[2:-2])
                    if name not in outer.images:
                        return self._send(404, b'{"errors": [{"code": "NAME_UNKNOWN"}]}')
                    names = sorted(outer.images[name])
                    size = int(query.get("n", ["100"])[0])
                    after = query.get("last", [""])[0]
                    rest = [t for t in names if t > after]
                    page, more = rest[:size], len(rest) > size
                    headers = {"Content-Type": "application/json"}
                    if more:
                        headers["Link"] = f'</v2/{name}/tags/list?n={size}&last={page[-1]}>; rel="next"'
                    return self._send(200, json.dumps({"name": name, "tags": page}).encode(), headers)
                if "manifests" in parts:
                    name, tag = "/".join(parts[2:-2]), parts[-1]
                    manifest = outer.images.get(name, {}).get(tag)
                    if manifest is None:
                        return self._send(404, b'{"errors": [{"code": "MANIFEST_UNKNOWN"}]}')
                    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
                    media = "application/vnd.oci.image.manifest.v1+json"
                    return self._send(200, manifest, {"Docker-Content-Digest": digest, "Content-Type": media})
                return self._send(404, b"{}")

            do_GET = do_HEAD = _answer  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.login, self.password = login, password
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def push(self, name: str, tag: str, content: str = "") -> str:
        """Tag a manifest (its bytes made from ``content``) in ``name``; its digest."""
        import hashlib

        manifest = json.dumps({"schemaVersion": 2, "config": {"digest": content or tag}}).encode()
        self.images.setdefault(name, {})[tag] = manifest
        return "sha256:" + hashlib.sha256(manifest).hexdigest()

    def connection(self, password: str | None = None) -> str:
        """An Airflow HTTP connection (JSON) of this registry."""
        return json.dumps(
            {
                "conn_type": "http",
                "host": "127.0.0.1",
                "port": self.port,
                "schema": "http",
                "login": self.login,
                "password": self.password if password is None else password,
            }
        )

    def __enter__(self) -> OciRegistry:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
