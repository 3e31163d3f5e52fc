"""An approval gate's progress kept across retries (change_service/gates.py): Airflow 3.3 can fail a gate
answered within seconds of parking (the executor's late report of the parking meets the task already queued
again) and clears a retried task's XComs. The gate keeps its deadline and votes in the built-in service too; a
retried try restores them, counts the answers its earlier tries' requests received, and decides or parks again
with the time left -- so an answer given at any moment after the gate parks counts, once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import Context

VOTES, DEADLINE, REFUSED = "gate_votes", "gate_deadline", "gate_refused"
#: what _resume returns on a first try; what _wait_again returns while earlier answers are replayed
_FRESH, _WAITING = object(), object()


class GateProgressMixin:
    """For ApprovalGateOperator: ``_keep`` after every change of its votes, ``_resume`` first in ``execute``."""

    _replaying = False  # while earlier answers are replayed, the gate's _wait_again returns _WAITING

    if TYPE_CHECKING:  # what the gate operator provides
        task_id: str
        log: Any

        def execute_complete(self, context: Context, event: dict[str, Any]) -> Any: ...

        def _wait_again(self, context: Context, approvals: list[dict[str, Any]]) -> Any: ...

        def _audit(self, context: Context, event: str, outcome: str, actor: str = "", **details: Any) -> None: ...

    def _keep(
        self, context: Context, votes: list[dict[str, Any]], refused: list[dict[str, Any]], decided: str = ""
    ) -> None:
        """The gate's progress, also in the built-in service: a retried try goes on from it (its XComs are
        cleared). ``decided`` once the gate has decided: a later try (someone cleared the gate to ask again)
        then starts afresh. Best effort: without it, a retry starts the gate again."""
        from release_mgmt.change_service.service_token import TaskIdentity
        from release_mgmt.hooks.gates import GateProgressClient

        deadline = str(context["ti"].xcom_pull(task_ids=self.task_id, key=DEADLINE) or "")
        try:
            GateProgressClient(TaskIdentity.from_context(context)).save(deadline, votes, refused, decided)
        except Exception as exc:  # noqa: BLE001 - the gate works on from its XComs
            self.log.warning("could not keep the gate's progress in the built-in service: %s", exc)

    def _resume(self, context: Context) -> Any:
        """On a retry (Airflow fails a gate answered just as it parked, then tries it again): restore the
        deadline and votes, count the answers the earlier tries' requests received, and decide or wait again
        with the time left. _FRESH on a first try or when nothing was kept."""
        ti = context["ti"]
        if int(getattr(ti, "try_number", 1) or 1) <= 1:
            return _FRESH
        from release_mgmt.change_service.service_token import TaskIdentity
        from release_mgmt.hooks.gates import GateProgressClient

        try:
            kept = GateProgressClient(TaskIdentity.from_context(context)).load()
        except Exception as exc:  # noqa: BLE001 - then the gate asks again from the start
            self.log.warning("could not read the gate's progress (%s): asking again from the start", exc)
            return _FRESH
        progress = kept.get("progress")
        if not progress or not progress.get("deadline") or progress.get("decided"):
            return _FRESH  # nothing kept, or the gate had decided and was cleared to ask again
        votes, refused = list(progress.get("votes") or []), list(progress.get("refused") or [])
        ti.xcom_push(key=DEADLINE, value=progress["deadline"])
        ti.xcom_push(key=VOTES, value=votes)
        ti.xcom_push(key=REFUSED, value=refused)
        seen = {(v["user"], _moment(v.get("at"))) for v in [*votes, *refused]}
        unseen: list[dict[str, Any]] = []
        for answer in kept.get("answers") or []:
            key = (answer["user"], _moment(answer["at"]))
            if key not in seen:
                seen.add(key)
                unseen.append(answer)
        self._audit(context, "gate.resumed", "waiting", try_number=ti.try_number, votes=len(votes), answers=unseen)
        self.log.info(
            "try %s: going on with %d vote(s) and %d earlier answer(s)", ti.try_number, len(votes), len(unseen)
        )
        self._replaying = True
        try:
            for answer in unseen:
                event = {
                    "responded_by_user": {"id": answer["user"], "name": answer["user"]},
                    "chosen_options": [answer["option"]],
                    "params_input": {"comment": answer["comment"]},
                    "responded_at": answer["at"],
                }
                outcome = self.execute_complete(context, event)
                if outcome is not _WAITING:
                    return outcome
        finally:
            self._replaying = False
        return self._wait_again(context, list(ti.xcom_pull(task_ids=self.task_id, key=VOTES) or []))


def _moment(value: Any) -> str:
    """An answer's time in one form (the event and Airflow's history write it differently)."""
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")
