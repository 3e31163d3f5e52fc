"""``python -m release_mgmt gates|approve|reject``: pending approval gates, answered through the REST API."""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from dataclasses import dataclass
from typing import Any

from release_mgmt.cli.rest import AirflowApi
from release_mgmt.errors import ReleaseMgmtError

PENDING = "/api/v2/dags/~/dagRuns/~/hitlDetails"


@dataclass(frozen=True)
class PendingGate:
    """An approval request waiting for answers."""

    dag_id: str
    run_id: str
    task_id: str
    subject: str
    assigned: tuple[str, ...]

    @property
    def environment(self) -> str:
        return self.task_id.split(".", 1)[0]

    @property
    def gate(self) -> str:
        return self.task_id.split(".", 1)[-1].removeprefix("gate_")


def pending(api: AirflowApi, dag_id: str | None = None) -> list[PendingGate]:
    """Every release gate waiting for an answer (optionally of one DAG)."""
    found = api.get(PENDING, response_received="false", limit=100)
    gates = []
    for detail in found.get("hitl_details", []):
        ti = detail.get("task_instance") or {}
        task_id = str(ti.get("task_id", ""))
        if ".gate_" not in task_id or (dag_id and ti.get("dag_id") != dag_id):
            continue
        users = tuple(str(u.get("name") or u.get("id")) for u in detail.get("assigned_users") or [])
        gates.append(
            PendingGate(
                str(ti.get("dag_id")), str(ti.get("dag_run_id")), task_id, str(detail.get("subject", "")), users
            )
        )
    return sorted(gates, key=lambda g: (g.dag_id, g.run_id, g.task_id))


def find(api: AirflowApi, run_id: str, environment: str, gate: str | None = None) -> PendingGate:
    """The one pending gate of ``run_id`` in ``environment`` (and named ``gate``, when given)."""
    matches = [
        g
        for g in pending(api)
        if g.run_id == run_id and g.environment == environment and (gate is None or g.gate == gate)
    ]
    if not matches:
        raise ReleaseMgmtError(
            f"no approval gate of run {run_id} in {environment} is waiting for an answer "
            "(see `python -m release_mgmt gates`)"
        )
    if len(matches) > 1:
        names = ", ".join(f"{g.dag_id}: {g.gate}" for g in matches)
        raise ReleaseMgmtError(f"several gates match ({names}); name one with --gate (or the DAG with --dag)")
    return matches[0]


def answer(api: AirflowApi, gate: PendingGate, decision: str, comment: str) -> dict[str, Any]:
    """Send Approve or Reject with a comment, as the caller."""
    path = (
        f"/api/v2/dags/{urllib.parse.quote(gate.dag_id)}/dagRuns/{urllib.parse.quote(gate.run_id)}"
        f"/taskInstances/{urllib.parse.quote(gate.task_id)}/-1/hitlDetails"
    )
    result: dict[str, Any] = api.patch(path, {"chosen_options": [decision], "params_input": {"comment": comment}})
    return result


def cmd_gates(args: argparse.Namespace) -> int:
    """Pending approval gates, with who may answer them."""
    from release_mgmt.cli.rest import AirflowApi

    found = pending(AirflowApi(), args.dag)
    if not found:
        print("no approval gate is waiting")
    for gate in found:
        print(
            f"{gate.dag_id}  {gate.run_id}  {gate.environment}  {gate.gate}  approvers: {', '.join(gate.assigned)}"
            f"  -- {gate.subject}"
        )
    return 0


def cmd_answer(args: argparse.Namespace) -> int:
    """Approve or reject a pending gate as the caller (the gate itself judges the vote)."""
    from release_mgmt.cli.rest import AirflowApi
    from release_mgmt.gates.approval import APPROVE, REJECT

    if args.command == "reject" and not args.comment.strip():
        print("a reject needs --comment saying why", file=sys.stderr)
        return 2
    api = AirflowApi()
    gate = find(api, args.run_id, args.environment, args.gate)
    if args.dag and gate.dag_id != args.dag:
        print(f"run {args.run_id} belongs to {gate.dag_id}, not {args.dag}", file=sys.stderr)
        return 2
    answer(api, gate, APPROVE if args.command == "approve" else REJECT, args.comment)
    print(
        f"{args.command} sent for {gate.dag_id} {gate.run_id} {gate.environment} gate {gate.gate}; "
        "the gate's log says whether it counted"
    )
    return 0


def add_commands(sub: Any) -> None:
    """Register the group's commands on the root parser's subparsers."""
    gates = sub.add_parser("gates", help="list approval gates waiting for an answer (REST API, your credentials)")
    gates.add_argument("--dag", help="only this DAG (release_<name>)")
    gates.set_defaults(func=cmd_gates)
    for verb in ("approve", "reject"):
        answer_it = sub.add_parser(verb, help=f"{verb} a pending approval gate as yourself (REST API)")
        answer_it.add_argument("run_id")
        answer_it.add_argument("environment")
        answer_it.add_argument("--comment", default="", help="why (required to reject)")
        answer_it.add_argument("--gate", help="the gate's name when the environment has several")
        answer_it.add_argument("--dag", help="the DAG, when the run id alone is ambiguous")
        answer_it.set_defaults(func=cmd_answer)
