"""Real servers the tests start on loopback: OpenSSH's sshd (from Debian's openssh-server)."""

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
from pathlib import Path

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
