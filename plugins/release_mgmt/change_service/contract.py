"""What the built-in service and its clients agree on, without the service's database code: the API paths and
who holds an environment lock. Workers and the triggerer import this, never the SQLAlchemy modules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TABLE = "/api/now/table/change_request"
APPROVALS = "/api/now/table/sysapproval_approver"
JOURNAL = "/api/now/table/sys_journal_field"
#: ServiceNow's Change Management API (``sn_chg_rest``)
CHANGE_API = "/api/sn_chg_rest/change"
DECIDE = "/api/release_mgmt/change_request/{sys_id}"
LOCKS = "/api/release_mgmt/locks"
FENCES = "/api/release_mgmt/fences"
GATES = "/api/release_mgmt/gates"
NOTIFICATIONS = "/api/release_mgmt/notifications"


@dataclass(frozen=True)
class Holder:
    """Who asks for a lock: one run of one DAG in one environment."""

    dag_id: str
    run_id: str
    environment: str

    def owns(self, request: Any) -> bool:
        """Whether ``request`` (anything with dag_id, run_id and environment) is this holder's."""
        return (request.dag_id, request.run_id, request.environment) == (self.dag_id, self.run_id, self.environment)


def describe(request: dict[str, Any] | None) -> str:
    """``release_x run R (prod) since T`` for a holder or waiter; ``nobody`` for None."""
    if not request:
        return "nobody"
    since = request.get("granted_on") or request.get("requested_on") or ""
    return f"{request['dag_id']} run {request['run_id']} ({request['environment']}) since {since}"
