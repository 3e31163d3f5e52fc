"""Changes: the list, and one change with its plans, journal and approval records. An eligible authorizer gets
Approve and Reject; the page posts the decision to the change service (same origin, the UI's session), whose
permission table and rules decide again, so a forged post by anyone else is refused there."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from release_mgmt.change_service import approvals as approval_rules
from release_mgmt.change_service.contract import DECIDE
from release_mgmt.console.app import Settings, Viewer, local_time, render
from release_mgmt.console.pages import SettingsDep, ViewerDep
from release_mgmt.rules.change import AUTHORIZE, ChangeState

router = APIRouter()
PLANS = ("description", "implementation_plan", "backout_plan", "test_plan", "justification")


def state_label(value: str) -> str:
    """``-3`` -> ``Authorize`` (the stored value when it is none of ServiceNow's states)."""
    try:
        return ChangeState.of(value).label
    except ValueError:
        return value


def summary(change: dict[str, str]) -> dict[str, Any]:
    """What a list row shows (under keys Airflow's masker leaves alone)."""
    return {
        "sys_id": change["sys_id"],
        "number": change["number"],
        "title": change["short_description"],
        "state": state_label(change["state"]),
        "approval": change["approval"],
        "type": change["type"],
        "dag_id": change["u_airflow_dag_id"],
        "run_id": change["u_airflow_run_id"],
        "opened": local_time(change["sys_created_on"]),
        "requested_by": change["u_requested_by"],
    }


@router.get("/changes")
def changes_page(request: Request, viewer: Viewer = ViewerDep, config: Settings = SettingsDep) -> Response:
    """The newest changes of the releases the viewer may read; the ones waiting for this viewer first."""
    changes = [c for c in config.sources.changes() if viewer.can_read(c["u_airflow_dag_id"])]
    pending = config.sources.pending_approvals(viewer.name)  # the viewer's own unanswered approval records
    waiting = {c["sys_id"] for c in changes if c["sys_id"] in pending and c["state"] == str(int(AUTHORIZE))}
    rows = [summary(c) | {"yours": c["sys_id"] in waiting} for c in changes]
    rows.sort(key=lambda r: not r["yours"])  # stable: newest first within each part
    return render(request, "changes.html", changes=rows)


@router.get("/changes/{sys_id}")
def change_page(request: Request, sys_id: str, viewer: Viewer = ViewerDep, config: Settings = SettingsDep) -> Response:
    """One change; Approve and Reject for a viewer holding a requested approval record of it in Authorize."""
    change = config.sources.change(sys_id)
    if change is None or not viewer.can_read(change["u_airflow_dag_id"]):
        raise HTTPException(404, detail=f"no change {sys_id[:40]} (or you may not read it)")
    records = config.sources.approvals(change["sys_id"])
    run = config.sources.run(change["u_airflow_dag_id"], change["u_airflow_run_id"])
    triggered_by = run.triggered_by if run else ""
    mine = next((r for r in records if r["approver"] == viewer.name), None)
    can_decide = (
        change["state"] == str(int(AUTHORIZE))
        and mine is not None
        and mine["state"] == approval_rules.REQUESTED
        and viewer.name not in {change["u_requested_by"], triggered_by}
    )
    excluded = {change["u_requested_by"], triggered_by} - {""}
    return render(
        request,
        "change.html",
        change=summary(change),
        plans=[(name.replace("_", " "), change[name]) for name in PLANS if change.get(name)],
        journal=change.get("work_notes", ""),
        close=(change["close_code"], change["close_notes"]),
        window=(local_time(change["start_date"] or None), local_time(change["end_date"] or None)),
        needed=change["u_min_authorizations"] or "1",
        eligible=approval_rules.eligible(change["u_authorizers"], excluded),
        records=[
            {"approver": r["approver"], "state": r["state"], "comments": r["comments"], "at": r["sys_updated_on"]}
            for r in records
        ],
        can_decide=can_decide,
        decide_url=f"{config.change_service}{DECIDE.replace('{sys_id}', change['sys_id'])}",
    )
