"""The release tasks' service principal: how a task proves to the built-in service that it is a release task.

Tasks hold no user's credentials. Each call carries a standard JWT (HS256, PyJWT) signed with the
service's own secret, ``$RELEASE_MGMT_SERVICE_SECRET`` (never Airflow's JWT secret; a file in
AIRFLOW_HOME only for a single-machine Airflow that did not set it). The token names the task it was
minted for (``dag_id``, ``run_id``, ``task_id``), has audience ``release_mgmt-change-service`` and
lives at most :data:`MAX_TTL_SECONDS`: the service refuses anything older, longer-lived, for another
audience or without those claims. The principal is no user name: a caller is the service principal
because its token verified here, never because of what it is called, and its display name
:data:`SERVICE_PRINCIPAL` has brackets, which no Airflow user name can have.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from release_mgmt.errors import ReleaseMgmtError

SERVICE_PRINCIPAL = "release_mgmt[service]"
AUDIENCE = "release_mgmt-change-service"
ISSUER = "release_mgmt"
ALGORITHM = "HS256"
#: the longest lifetime the service accepts (expiry minus issue time), and the default a task asks for
MAX_TTL_SECONDS = 300
DEFAULT_TTL_SECONDS = 120
#: values no deployment may use as its secret (the ones ever shown in examples)
KNOWN_DEFAULTS = frozenset({"change-me-too", "change-me", "changeme", "secret", "release_mgmt"})
MIN_SECRET_LENGTH = 32
SECRET_FILE = "release_mgmt_service.secret"  # noqa: S105 - a file name, not a secret


class ServiceSecretError(ReleaseMgmtError):
    """The service secret is missing where it must be set, or is a known default or too short."""


@dataclass(frozen=True)
class TaskIdentity:
    """The release task a token is bound to."""

    dag_id: str
    run_id: str
    task_id: str

    @property
    def environment(self) -> str:
        """The environment the task acts in: its task group (``prod.lock`` -> ``prod``)."""
        return self.task_id.split(".", 1)[0] if "." in self.task_id else ""

    def as_dict(self) -> dict[str, str]:
        return {"dag_id": self.dag_id, "run_id": self.run_id, "task_id": self.task_id}

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> TaskIdentity:
        ti = context["ti"]
        return cls(str(ti.dag_id), str(context["run_id"]), str(ti.task_id))


def check_secret(value: str, where: str = "RELEASE_MGMT_SERVICE_SECRET") -> str:
    """``value`` when fit to sign service tokens; else why not and what to do."""
    if not value:
        raise ServiceSecretError(f"{where} is empty: set it to a random value, e.g. `openssl rand -hex 32`")
    if value in KNOWN_DEFAULTS or len(value) < MIN_SECRET_LENGTH:
        raise ServiceSecretError(
            f"{where} is a known default or shorter than {MIN_SECRET_LENGTH} characters: set a random value, "
            "e.g. `openssl rand -hex 32`, the same for the API server, workers and triggerer"
        )
    return value


def _secret() -> bytes:
    """``$RELEASE_MGMT_SERVICE_SECRET``, else (one machine) a random secret kept in AIRFLOW_HOME."""
    if "RELEASE_MGMT_SERVICE_SECRET" in os.environ:
        return check_secret(os.environ["RELEASE_MGMT_SERVICE_SECRET"]).encode()
    from airflow.configuration import AIRFLOW_HOME

    path = Path(AIRFLOW_HOME) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
    return check_secret(path.read_text().strip(), str(path)).encode()


def require_deployment_secret() -> None:
    """Refuse to serve with a weak secret: a set ``$RELEASE_MGMT_SERVICE_SECRET`` must be fit, and an Airflow
    whose tasks run on other machines (any executor but LocalExecutor) must set it; the AIRFLOW_HOME file
    only serves processes on one machine."""
    if "RELEASE_MGMT_SERVICE_SECRET" in os.environ:
        check_secret(os.environ["RELEASE_MGMT_SERVICE_SECRET"])
        return
    from airflow.configuration import conf

    executors = [e.strip() for e in (conf.get("core", "executor", fallback="") or "LocalExecutor").split(",")]
    remote = [e for e in executors if e and e.split(".")[-1] != "LocalExecutor"]
    if remote:
        raise ServiceSecretError(
            f"RELEASE_MGMT_SERVICE_SECRET is not set, and tasks run on other machines ({', '.join(remote)}): "
            "set it to the same random value (e.g. `openssl rand -hex 32`) for the API server, workers and triggerer"
        )


def make_token(identity: TaskIdentity, ttl: float = DEFAULT_TTL_SECONDS, now: float | None = None) -> str:
    """A token for the release task ``identity``, valid ``ttl`` seconds."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": SERVICE_PRINCIPAL,
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(ttl),
        "jti": uuid.uuid4().hex,
        **identity.as_dict(),
    }
    return jwt.encode(claims, _secret(), algorithm=ALGORITHM)


def check_token(token: str) -> TaskIdentity | None:
    """The release task a valid service token was minted for; None for anything else (a user's token,
    a forged, expired, over-long-lived or foreign token)."""
    try:
        claims = jwt.decode(
            token,
            _secret(),
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "aud", "iss", "sub"]},
            leeway=5,
        )
    except jwt.PyJWTError:
        return None
    if claims.get("sub") != SERVICE_PRINCIPAL or int(claims["exp"]) - int(claims["iat"]) > MAX_TTL_SECONDS:
        return None
    fields = [claims.get(k) for k in ("dag_id", "run_id", "task_id")]
    if not all(isinstance(f, str) and f for f in fields):
        return None
    return TaskIdentity(*fields)  # type: ignore[arg-type]


def addressed_to_service(token: str) -> bool:
    """Whether ``token`` claims to be a service token (its audience, read without trusting it): one that then
    fails :func:`check_token` was signed with another secret, expired or overreached."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False, "verify_aud": False, "verify_exp": False})
    except jwt.PyJWTError:
        return False
    return claims.get("aud") == AUDIENCE


REFUSED_HINT = (
    "service token refused: expired, too long-lived, or signed with another secret; give the API server, workers "
    "and triggerer the same RELEASE_MGMT_SERVICE_SECRET"
)


def base_url() -> str:
    """Where the built-in service answers: $RELEASE_MGMT_CHANGE_SERVICE_URL, else the API server's URL."""
    if value := os.environ.get("RELEASE_MGMT_CHANGE_SERVICE_URL"):
        return value.rstrip("/")
    from airflow.configuration import conf

    api = conf.get("api", "base_url", fallback="") or ""
    if not api:
        execution = conf.get("core", "execution_api_server_url", fallback="") or "http://localhost:8080/execution/"
        api = execution.rstrip("/").removesuffix("/execution")
    return f"{api.rstrip('/')}/change-service"
