"""A step's process never outlives its task: the guard runs a command and stops it when the task goes away.

Run as ``python guard.py --watch PID[,PID...] --grace SECONDS -- PROGRAM ARGS...`` (standard library only,
started by path: the command step's process is this script, the command its child). The command runs in its
own process group. The guard stops that whole group -- SIGTERM, then SIGKILL after ``--grace`` seconds --
when:

- it receives SIGTERM, SIGINT or SIGHUP itself (the step's timeout, the operator's ``on_kill``);
- its parent dies, however it dies (Linux delivers SIGTERM through ``PR_SET_PDEATHSIG``);
- any watched process ends (the task's process and its supervisor: a killed supervisor leaves the task
  process running, but its work can no longer be reported, so it must not go on changing the target).

Orphaned descendants become the guard's children (``PR_SET_CHILD_SUBREAPER``), so the guard reaps them.
When the command ends by itself, anything it started in the background is left running (a deploy may start
a service); only a stop ends the whole group. Exit code: the command's, or 128 + signal when it was stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
#: how often the watched processes are looked at
POLL_SECONDS = 0.2
#: the exit code of a stopped command (what a shell reports for SIGTERM)
STOPPED = 128 + signal.SIGTERM


def _prctl(option: int, value: int) -> None:
    """Linux's prctl, when there is one (elsewhere the guard still watches the processes it was given)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _started(pid: int) -> str | None:
    """When ``pid`` started (field 22 of /proc/PID/stat), so a reused pid is not taken for the watched one;
    None when the process is gone; "" where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace").rsplit(")", 1)[1].split()
        return "" if fields[0] == "Z" else fields[19]
    except FileNotFoundError:
        return None if Path("/proc").is_dir() else _exists(pid)
    except (OSError, IndexError):
        return ""


def _exists(pid: int) -> str | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return ""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap() -> list[tuple[int, int]]:
    """Every ended child (the command and adopted orphans): (pid, exit code)."""
    ended: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended.append((pid, os.waitstatus_to_exitcode(status)))


def _say(text: str) -> None:
    """A line in the task log, while there is one (a dead task leaves a broken pipe: the stop goes on)."""
    with contextlib.suppress(OSError, ValueError):
        print(f"release_mgmt guard: {text}", file=sys.stderr, flush=True)


def stop_group(pgid: int, grace: float) -> str:
    """SIGTERM to the group, SIGKILL to what is left after ``grace`` seconds; how it ended, in words."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap()
        if not _group_alive(pgid):
            return "stopped by SIGTERM"
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _group_alive(pgid) and time.monotonic() < deadline:
        _reap()
        time.sleep(0.05)
    if _group_alive(pgid):
        return f"SIGKILL sent after {grace:g}s, but processes of group {pgid} are still there"
    return f"did not stop within {grace:g}s of SIGTERM: killed with SIGKILL"


def main(argv: list[str]) -> int:
    watch: list[int] = []
    grace = 10.0
    while argv and argv[0] != "--":
        option, value, argv = argv[0], argv[1], argv[2:]
        if option == "--watch":
            watch = [int(p) for p in value.split(",") if p and int(p) > 1]
        elif option == "--grace":
            grace = float(value)
    command = argv[1:]
    if not command:
        _say("no command given")
        return 2
    stop_signal: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: stop_signal.append(signum))
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    watched = {pid: _started(pid) for pid in watch}
    parent = os.getppid()
    child = subprocess.Popen(command, process_group=0)  # the step's own argv; bash is in it
    while True:
        for pid, code in _reap():
            if pid == child.pid:
                child.returncode = code
                return code if code >= 0 else 128 - code
        gone = [pid for pid, started in watched.items() if _started(pid) != started]
        if stop_signal or gone or os.getppid() != parent:
            why = (
                f"signal {signal.Signals(stop_signal[0]).name}"
                if stop_signal
                else f"task process {gone[0] if gone else parent} ended"
            )
            _say(f"stopping the command ({why}): SIGTERM to its process group, SIGKILL after {grace:g}s")
            _say(stop_group(child.pid, grace))
            return STOPPED
        time.sleep(POLL_SECONDS)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
