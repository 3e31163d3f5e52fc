"""Running the ``git`` command for a version source: a minimal environment (no user or system configuration,
no terminal prompt, only the file, git, http(s) and ssh transports), a time limit after which its whole process
group stops, and credentials passed as an HTTP header through git's environment, never on its command line."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import tempfile

from release_mgmt.errors import SourceError, excerpt

TRANSPORTS = "file:git:http:https:ssh"


def git_env(home: str, login: str = "", password: str = "") -> dict[str, str]:
    """The environment git runs with; HTTP Basic credentials become an ``http.extraHeader`` setting."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "LANG": "C",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ALLOW_PROTOCOL": TRANSPORTS,
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o ConnectTimeout=10",
    }
    if login or password:
        token = base64.b64encode(f"{login}:{password}".encode()).decode()
        env |= {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader"}
        env["GIT_CONFIG_VALUE_0"] = f"Authorization: Basic {token}"
    return env


def run_git(args: list[str], env: dict[str, str], what: str, timeout: float = 60.0, cwd: str | None = None) -> str:
    """git's standard output; SourceError naming ``what`` when git fails or runs past ``timeout`` seconds."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            ["git", *args], stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd, process_group=0
        )
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise SourceError(f"{what}: git did not answer within {timeout:.0f} s") from None
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if code:
        raise SourceError(f"{what}: git failed: {excerpt(stderr) or f'exit status {code}'}")
    return stdout
