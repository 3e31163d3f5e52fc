"""The train's word to a member run: a JWT signed with the service secret (never a user's), bound to the member's
release, its run id, the environment, the versions and what the run is for (``stage`` or ``revert``). A member run
carrying one lets the train speak for it: a ``revert`` run may deploy the environment's last known good version
although the environment before it runs something newer (the promotion rule is waived, and says so). A claim that
does not verify (forged, for another run, versions or environment, expired) fails the member's preflight: a
person cannot write one into a trigger form."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import jwt

from release_mgmt.change_service.service_token import ALGORITHM, ISSUER, _secret

AUDIENCE = "release_mgmt-train"
#: a member run may wait in its DAG's queue behind other runs before its preflight reads the claim
TTL_SECONDS = 24 * 3600
CONF_KEY = "train_claim"


def make_claim(
    *,
    train: str,
    train_run_id: str,
    release: str,
    run_id: str,
    environment: str,
    purpose: str,
    versions: Mapping[str, str],
    waive_gates: bool = False,
) -> str:
    """The claim for one member run the train is about to trigger."""
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + TTL_SECONDS,
        "train": train,
        "train_run_id": train_run_id,
        "release": release,
        "run_id": run_id,
        "environment": environment,
        "purpose": purpose,
        "versions": dict(versions),
        "waive_gates": waive_gates,
    }
    return jwt.encode(claims, _secret(), algorithm=ALGORITHM)


def gate_waiver(context: Any, release: str, environment: str, components: list[str]) -> dict[str, Any] | None:
    """The claim of the train that runs this member run and waives its gates (``member_gates: waive``), checked
    again here (never trusted from another task's output); None when the run carries none or it waives nothing."""
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    if CONF_KEY not in conf:
        return None
    versions = {c: str(context["params"].get(f"version_{c}") or "") for c in components}
    found = check_claim(
        conf[CONF_KEY], release=release, run_id=str(context["run_id"]), environments=[environment], versions=versions
    )
    return found if isinstance(found, dict) and found.get("waive_gates") else None


def check_claim(
    token: Any, *, release: str, run_id: str, environments: list[str], versions: Mapping[str, str]
) -> dict[str, Any] | str:
    """The claim's fields when ``token`` verifies for exactly this run; else why not, in words."""
    if not isinstance(token, str):
        return "it is not a signed claim"
    try:
        claims = jwt.decode(
            token, _secret(), algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER, options={"require": ["exp"]}
        )
    except jwt.PyJWTError as exc:
        return f"it does not verify ({type(exc).__name__})"
    expected = {"release": release, "run_id": run_id, "environment": environments[0] if len(environments) == 1 else ""}
    for key, value in expected.items():
        if claims.get(key) != value:
            return f"it was made for another {key.replace('_', ' ')}"
    if dict(claims.get("versions") or {}) != dict(versions):
        return "its versions are not this run's"
    if claims.get("purpose") not in ("stage", "revert"):
        return "its purpose is unknown"
    return claims
