"""Deploy, probe, check and roll back the sample service in one environment folder.

    ctl.py deploy   --root DIR --port P --version V [--environment E]
    ctl.py current  --root DIR                  prints the running version (nothing if none)
    ctl.py check    --port P --version V        waits until /health is ok and reports V
    ctl.py rollback --root DIR --port P [--to V] restores V, or stops the service when V is empty

Each environment folder holds releases/<version>/ (a copy of service.py), ``current`` (the
version that runs), ``service.pid`` and ``service.log``. Only the standard library is used.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _pid(root: Path) -> int | None:
    try:
        pid = int((root / "service.pid").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def stop(root: Path) -> None:
    pid = _pid(root)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
    (root / "service.pid").unlink(missing_ok=True)


def _health(port: int, timeout: float = 2.0) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def start(root: Path, port: int, version: str, environment: str) -> None:
    release = root / "releases" / version
    release.mkdir(parents=True, exist_ok=True)
    shutil.copy2(HERE / "service.py", release / "service.py")
    stop(root)
    log = (root / "service.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(release / "service.py"),
            "--port",
            str(port),
            "--version",
            version,
            "--environment",
            environment,
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        close_fds=True,
    )
    (root / "service.pid").write_text(str(proc.pid))
    (root / "current").write_text(version)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"service {version} exited with code {proc.returncode}; see {root / 'service.log'}")
        try:
            _health(port, timeout=0.5)
            print(f"started sample service {version} on 127.0.0.1:{port} (pid {proc.pid})")
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"service {version} did not answer on port {port} within 10s")


def check(port: int, version: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    last = "no answer"
    while True:
        try:
            status, body = _health(port)
            if status == 200 and body.get("version") == version:
                print(f"healthy: version {version} answers on port {port}")
                return
            last = f"HTTP {status}, body {body}"
        except OSError as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            sys.exit(f"health check failed on port {port}: expected version {version}, got {last}")
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["deploy", "current", "check", "rollback", "stop"])
    parser.add_argument("--root", type=Path)
    parser.add_argument("--port", type=int)
    parser.add_argument("--version", default="")
    parser.add_argument("--to", default="")
    parser.add_argument("--environment", default="")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if args.action == "check":
        check(args.port, args.version, args.seconds)
        return
    root: Path = args.root
    root.mkdir(parents=True, exist_ok=True)
    if args.action == "deploy":
        start(root, args.port, args.version, args.environment)
    elif args.action == "current":
        current = root / "current"
        print(current.read_text().strip() if current.exists() and _pid(root) else "")
    elif args.action == "rollback" and args.to:
        start(root, args.port, args.to, args.environment)
        print(f"rolled back to {args.to}")
    else:  # rollback with nothing to restore, or stop
        stop(root)
        (root / "current").unlink(missing_ok=True)
        print("nothing to restore: service stopped" if args.action == "rollback" else "stopped")


if __name__ == "__main__":
    main()
