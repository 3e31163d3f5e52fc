"""Walks the permission table (permissions.PERMISSIONS) against a running change service, role by role.

Used against the service on its own and inside a real Airflow: the expected status of each call
follows from the same table the service enforces, so a row added to one is walked by the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from release_mgmt.change_service import permissions as perms
from release_mgmt.change_service.service_token import TaskIdentity, make_token

DAG, RUN = "release_matrix", "manual__matrix"
#: the change's authorizers: carol answers as the authorizer; alice asked for the change (never eligible)
AUTHORIZERS, REQUESTER, AUTHORIZER = "alice,carol,dave", "alice", "carol"


@dataclass
class Service:
    """A running service: its base URL and how each role signs in (``auth(role)`` -> requests kwargs)."""

    url: str
    auth: Callable[[str], dict[str, Any]]

    def call(self, method: str, path: str, role: str, body: Any = None, **params: Any) -> requests.Response:
        return requests.request(
            method, self.url + path, json=body, params=params or None, timeout=30, **self.auth(role)
        )


def task_headers(task_id: str = "prod.change_open", run_id: str = RUN, dag_id: str = DAG) -> dict[str, Any]:
    """Credentials of a release task of ``dag_id``/``run_id`` (a service token; the secret must be set)."""
    return {"headers": {"Authorization": f"Bearer {make_token(TaskIdentity(dag_id, run_id, task_id))}"}}


def change_in_authorize(service: Service, **fields: str) -> dict[str, str]:
    """A normal change opened by a release task and waiting in Authorize, with its approval records."""
    body = {
        "short_description": "Release matrix to prod",
        "type": "normal",
        "correlation_id": f"release_mgmt:matrix:prod:{RUN}",
        "u_airflow_dag_id": DAG,
        "u_airflow_run_id": RUN,
        "u_requested_by": REQUESTER,
        "u_authorizers": AUTHORIZERS,
        **fields,
    }
    created = service.call("POST", perms.CHANGES, perms.RELEASE_TASK, body)
    assert created.status_code == 201, created.text
    change: dict[str, str] = created.json()["result"]
    for state in ("-4", "-3"):
        moved = service.call("PATCH", f"{perms.CHANGES}/{change['sys_id']}", perms.RELEASE_TASK, {"state": state})
        assert moved.status_code == 200, moved.text
    return change


def new_change(service: Service) -> dict[str, str]:
    body = {"short_description": "Release matrix to prod", "u_airflow_dag_id": DAG, "u_airflow_run_id": RUN}
    created = service.call("POST", perms.CHANGES, perms.RELEASE_TASK, body)
    assert created.status_code == 201, created.text
    change: dict[str, str] = created.json()["result"]
    return change


def approval_of(service: Service, change: dict[str, str], user: str) -> dict[str, str]:
    rows = service.call(
        "GET",
        perms.APPROVALS,
        perms.RELEASE_TASK,
        sysparm_query=f"sysapproval={change['sys_id']}",
        sysparm_exclude_reference_link="true",
    ).json()["result"]
    return next(r for r in rows if r["approver"] == user)


BODIES: dict[tuple[str, str], Any] = {
    ("POST", perms.CHANGES): {
        "short_description": "x",
        "type": "standard",
        "u_airflow_dag_id": DAG,
        "u_airflow_run_id": RUN,
    },
    ("PATCH", perms.CHANGES + "/{sys_id}"): {"work_notes": "a note"},
    ("PUT", perms.CHANGES + "/{sys_id}"): {"work_notes": "a note"},
    ("PATCH", perms.CHANGE_API + "/{sys_id}"): {"work_notes": "a note"},
    ("POST", perms.CHANGE_API + "/normal"): {
        "short_description": "x",
        "u_airflow_dag_id": DAG,
        "u_airflow_run_id": RUN,
    },
    ("POST", perms.CHANGE_API + "/emergency"): {"short_description": "x", "u_airflow_dag_id": DAG},
    ("POST", perms.CHANGE_API + "/standard/{template}"): {"short_description": "x"},
    ("PATCH", perms.APPROVALS + "/{sys_id}"): {"state": "approved", "comments": "looks fine"},
    ("PUT", perms.APPROVALS + "/{sys_id}"): {"state": "approved", "comments": "looks fine"},
    ("POST", perms.DECIDE + "/approve"): {"comment": "looks fine"},
    ("POST", perms.DECIDE + "/reject"): {"comment": "not now"},
    ("POST", perms.LOCKS + "/acquire"): {"lock": "matrix/prod"},
    ("POST", perms.LOCKS + "/release"): {"lock": "matrix/prod"},
    ("POST", perms.FENCES + "/hold"): {"component": "web", "seconds": 30},
    ("POST", perms.FENCES + "/end"): {"component": "web"},
    ("PUT", perms.GATES + "/progress"): {"deadline": "2026-11-30T00:00:00+00:00", "votes": [], "refused": []},
    ("POST", perms.NOTIFICATIONS): {
        "messages": [
            {
                "key": "f" * 64,
                "event": "run.failed",
                "channel": "matrix",
                "kind": "webhook",
                "connection": "matrix_no_such_connection",
                "subject": "s",
                "text": "t",
            }
        ]
    },
}


def expected(row: perms.Permission, role: str) -> str:
    """``allowed``, ``forbidden`` (403) or ``unauthenticated`` (401) for ``role`` calling ``row``."""
    if role == perms.ANONYMOUS:
        return "unauthenticated"
    return "allowed" if role in row.roles else "forbidden"


def walk(service: Service) -> list[str]:
    """Every row x role; returns the calls whose status did not match the table (empty when all did)."""
    shared = change_in_authorize(service)
    mismatches = []
    for row in perms.PERMISSIONS:
        for role in perms.ROLES:
            change = shared if row.method == "GET" else change_in_authorize(service)
            if row.method == "DELETE":  # only a change still New may be deleted
                change = new_change(service)
            target = change["sys_id"]
            if row.route.startswith(perms.APPROVALS + "/"):
                target = approval_of(service, change, AUTHORIZER)["sys_id"]
            path = row.route.replace("{sys_id}", target)
            response = service.call(row.method, path, role, BODIES.get((row.method, row.route)))
            want = expected(row, role)
            got = {401: "unauthenticated", 403: "forbidden"}.get(response.status_code, "allowed")
            if got != want or response.status_code >= 500:
                mismatches.append(
                    f"{role} {row.method} {path}: want {want}, got {response.status_code} {response.text[:200]}"
                )
    return mismatches
