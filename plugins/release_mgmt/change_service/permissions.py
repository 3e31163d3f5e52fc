"""Who may do what in the built-in change service: one table, enforced for every route, deny by default.

Rows are (method, route, action, roles allowed). A route without a row is refused (403) whoever
calls; an anonymous caller is refused (401) everywhere, the API's docs included. Roles:

- ``viewer``, ``user``, ``op``, ``admin``: signed-in Airflow users, by their Airflow role. Humans read,
  and only what belongs to releases (DAGs) Airflow lets them read.
- ``authorizer``: a signed-in user holding a requested approval record of the change at hand; decides
  that record, nothing more. The requester and the run's triggering user never hold one.
- ``release_task``: a release task with a service token (service_token.py); writes lifecycle fields,
  takes and gives back locks and holds fences while its steps run, only for its own DAG run.

``table_markdown()`` prints the table for the README; tests walk ``PERMISSIONS`` against a real Airflow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from release_mgmt.change_service import contract
from release_mgmt.change_service.service_token import SERVICE_PRINCIPAL, TaskIdentity

ANONYMOUS, VIEWER, USER, OP, ADMIN = "anonymous", "viewer", "user", "op", "admin"
AUTHORIZER, RELEASE_TASK = "authorizer", "release_task"
HUMANS = (VIEWER, USER, OP, ADMIN)
ROLES = (ANONYMOUS, *HUMANS, AUTHORIZER, RELEASE_TASK)
READERS = frozenset({*HUMANS, AUTHORIZER, RELEASE_TASK})

CHANGES, APPROVALS, DECIDE, LOCKS = contract.TABLE, contract.APPROVALS, contract.DECIDE, contract.LOCKS
FENCES, GATES, NOTIFICATIONS = contract.FENCES, contract.GATES, contract.NOTIFICATIONS
JOURNAL, CHANGE_API = contract.JOURNAL, contract.CHANGE_API
TASK, ONE = frozenset({RELEASE_TASK}), frozenset({AUTHORIZER})


@dataclass(frozen=True)
class Permission:
    """One row: ``roles`` may do ``action`` (``method`` ``route``). ``scope`` says what else must hold:
    ``release`` -- the caller may read the record's release (DAG); ``own_run`` -- a release task acts only
    on its own DAG run; ``approver`` -- the caller holds a requested approval record of the change."""

    method: str
    route: str
    action: str
    roles: frozenset[str]
    scope: str = ""


PERMISSIONS: tuple[Permission, ...] = (
    Permission("GET", "/openapi.json", "read the API description", READERS),
    Permission("GET", "/docs", "read the API docs (Swagger UI)", READERS),
    Permission("GET", "/redoc", "read the API docs (ReDoc)", READERS),
    Permission("GET", CHANGES, "list and search changes", READERS, "release"),
    Permission("POST", CHANGES, "open a change for its run", frozenset({RELEASE_TASK}), "own_run"),
    Permission("GET", CHANGES + "/{sys_id}", "read a change", READERS, "release"),
    Permission("PATCH", CHANGES + "/{sys_id}", "move a change along its lifecycle", TASK, "own_run"),
    Permission("PUT", CHANGES + "/{sys_id}", "move a change along its lifecycle (as PATCH)", TASK, "own_run"),
    Permission("DELETE", CHANGES + "/{sys_id}", "delete a change still New", frozenset({ADMIN}), "release"),
    Permission("GET", JOURNAL, "list work notes", READERS, "release"),
    Permission("GET", JOURNAL + "/{sys_id}", "read a work note", READERS, "release"),
    Permission("GET", APPROVALS, "list a change's approval records", READERS, "release"),
    Permission("GET", APPROVALS + "/{sys_id}", "read an approval record", READERS, "release"),
    Permission("PATCH", APPROVALS + "/{sys_id}", "answer one's own approval record", ONE, "approver"),
    Permission("PUT", APPROVALS + "/{sys_id}", "answer one's own approval record (as PATCH)", ONE, "approver"),
    Permission("POST", DECIDE + "/approve", "approve a change (one's own record)", frozenset({AUTHORIZER}), "approver"),
    Permission("POST", DECIDE + "/reject", "reject a change (one's own record)", frozenset({AUTHORIZER}), "approver"),
    Permission("GET", CHANGE_API, "list and search changes (Change Management API)", READERS, "release"),
    Permission("GET", CHANGE_API + "/{sys_id}", "read a change (Change Management API)", READERS, "release"),
    Permission("GET", CHANGE_API + "/{sys_id}/nextstates", "read a change's next states", READERS, "release"),
    Permission("POST", CHANGE_API + "/normal", "open a normal change for its run", TASK, "own_run"),
    Permission("POST", CHANGE_API + "/emergency", "open an emergency change for its run", TASK, "own_run"),
    Permission("POST", CHANGE_API + "/standard/{template}", "open a standard change for its run", TASK, "own_run"),
    Permission("PATCH", CHANGE_API + "/{sys_id}", "move a change along its lifecycle", TASK, "own_run"),
    Permission("GET", LOCKS, "read environment locks", READERS, "release"),
    Permission("POST", LOCKS + "/acquire", "queue for a lock", frozenset({RELEASE_TASK}), "own_run"),
    Permission("POST", LOCKS + "/release", "give a lock back", frozenset({RELEASE_TASK}), "own_run"),
    Permission("GET", FENCES, "see steps still running on its target", frozenset({RELEASE_TASK}), "own_run"),
    Permission("POST", FENCES + "/hold", "fence its running step", frozenset({RELEASE_TASK}), "own_run"),
    Permission("POST", FENCES + "/end", "end its step's fence", frozenset({RELEASE_TASK}), "own_run"),
    Permission("GET", GATES + "/progress", "read its gate's progress", frozenset({RELEASE_TASK}), "own_run"),
    Permission("PUT", GATES + "/progress", "keep its gate's progress", frozenset({RELEASE_TASK}), "own_run"),
    Permission("POST", NOTIFICATIONS, "hand over its run's notifications", frozenset({RELEASE_TASK}), "own_run"),
    Permission("GET", NOTIFICATIONS, "read how notifications went", READERS, "release"),
)
_BY_ROUTE = {(p.method, p.route): p for p in PERMISSIONS}


def permission(method: str, route: str) -> Permission | None:
    """The row for a route template (as the app declares it); None means nobody may call it."""
    return _BY_ROUTE.get((method.upper(), route))


def _everything(dag_id: str) -> bool:
    return True


@dataclass(frozen=True)
class Caller:
    """Who is calling: a signed-in user (``role`` one of HUMANS) or a release task (``task`` set)."""

    name: str
    role: str
    task: TaskIdentity | None = None
    #: dag_id -> whether Airflow lets this caller read that DAG
    can_read: Callable[[str], bool] = field(default=_everything, compare=False)

    @classmethod
    def release_task(cls, task: TaskIdentity) -> Caller:
        """The service principal, bound to one task's run by its token."""
        return cls(SERVICE_PRINCIPAL, RELEASE_TASK, task)

    @property
    def is_release_task(self) -> bool:
        return self.role == RELEASE_TASK

    def release_filter(self) -> Callable[[str], bool] | None:
        """What list reads filter on (dag_id -> readable); None when every record is the caller's to read."""
        if self.is_release_task:
            return None if self.task is None else self.may_read_release
        return None if self.can_read is _everything else self.can_read

    def may_read_release(self, dag_id: str) -> bool:
        """Read access to a release's records: a release task to its own DAG's, a user to what Airflow allows."""
        if self.is_release_task:
            return self.task is None or self.task.dag_id == dag_id
        return self.can_read(dag_id)

    def owns_run(self, dag_id: str, run_id: str) -> bool:
        """A release task bound to this run (an unbound integration user of a standalone service owns all)."""
        if not self.is_release_task:
            return False
        return self.task is None or (self.task.dag_id, self.task.run_id) == (dag_id, run_id)


def role_of(airflow_role: str | None) -> str:
    """An Airflow user's role as a row of the table (an unknown or missing role reads like a viewer: what it
    may read is still decided by Airflow's DAG permissions)."""
    name = (airflow_role or "").lower()
    return name if name in HUMANS else VIEWER


def table_markdown() -> str:
    """The permission table as Markdown (the README's copy is checked against it)."""
    head = "| method | route | action | " + " | ".join(ROLES) + " | also needs |"
    rule = "|" + "---|" * (len(ROLES) + 4)
    needs = {
        "": "",
        "release": "read access to the release's DAG",
        "own_run": "its own DAG run",
        "approver": "a requested approval record of its own",
    }
    rows = [
        f"| {p.method} | `{p.route}` | {p.action} | "
        + " | ".join("yes" if r in p.roles else "-" for r in ROLES)
        + f" | {needs[p.scope]} |"
        for p in PERMISSIONS
    ]
    return "\n".join([head, rule, *rows])
