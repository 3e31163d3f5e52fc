"""The notifier of the definition's ``notify:`` rules: in the task that emitted an event, it makes the event's
messages (notify/routes.py) and hands them to the built-in service's outbox in one short call; the service sends
them (notify/sender.py). The task never waits for a mail server or a webhook."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from release_mgmt.change_service import service_token
from release_mgmt.change_service.contract import NOTIFICATIONS
from release_mgmt.change_service.service_token import TaskIdentity
from release_mgmt.definition.notify_rules import notification_event
from release_mgmt.notify import routes
from release_mgmt.notify.messages import Occasion, airflow_url

#: (connect, read) seconds the hand-over may take: the service answers from its own database
TIMEOUT = (2.0, 5.0)


class UnreachableError(Exception):
    """People a rule names who cannot be reached (no address): told as an audit line, the rest still sent."""


class OutboxNotifier:
    """Routes events by the release's rules and queues the messages in the service's outbox."""

    name: ClassVar[str] = "rules"

    @classmethod
    def from_environment(cls) -> OutboxNotifier | None:
        return cls() if routes.ROUTES else None

    def wants(self, event: Mapping[str, Any]) -> bool:
        return str(event.get("release", "")) in routes.ROUTES and notification_event(event) is not None

    def send(self, event: Mapping[str, Any]) -> None:
        defn = routes.ROUTES[str(event["release"])]
        occasion = current_occasion()
        messages = routes.messages_for(defn, event, occasion)
        if messages:
            hand_over(TaskIdentity(occasion.dag_id, occasion.run_id, occasion.task_id), messages)
        lacking = routes.unreachable(defn, event, occasion)
        if lacking:
            raise UnreachableError(f"no e-mail address in the directory for {', '.join(lacking)}")


def hand_over(identity: TaskIdentity, messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Queue ``messages`` in the service's outbox as ``identity``: each "queued" or "duplicate"."""
    result: list[dict[str, str]] = _call("POST", identity, json={"messages": messages})
    return result


def _call(method: str, identity: TaskIdentity, **kwargs: Any) -> Any:
    """One call to the outbox route as ``identity`` (a fresh service token), bounded by TIMEOUT; its result."""
    import requests  # when a task sends, never when a DAG file is parsed

    response = requests.request(
        method,
        service_token.base_url().rstrip("/") + NOTIFICATIONS,
        headers={"Authorization": f"Bearer {service_token.make_token(identity)}"},
        timeout=TIMEOUT,
        **kwargs,
    )
    if response.status_code != 200:
        raise ConnectionError(f"the change service answered {response.status_code}: {response.text[:200]}")
    return response.json()["result"]


def current_occasion() -> Occasion:
    """The running task's run: ids, who triggered it, the versions it deploys, Airflow's base URL."""
    from airflow.sdk import get_current_context

    context = get_current_context()
    params = context.get("params") or {}
    ti = context["ti"]
    # the versions the run's preflight settled (a source's answer), else what the form says
    found = ti.xcom_pull(task_ids="preflight") if ti.task_id != "preflight" else None
    settled = found.get("versions") if isinstance(found, dict) else None
    versions = {
        str(k).removeprefix("version_"): str(v) for k, v in params.items() if str(k).startswith("version_") and v
    }
    versions |= {str(k): str(v) for k, v in (settled or {}).items() if v}
    triggered_by = str(getattr(context.get("dag_run"), "triggering_user_name", "") or "")
    return Occasion(str(ti.dag_id), str(context["run_id"]), str(ti.task_id), triggered_by, versions, airflow_url())


def settled_ledger(identity: TaskIdentity, seconds: float, poll: float = 1.0) -> list[dict[str, Any]]:
    """The run's notifications once none is waiting to be sent any more (or ``seconds`` have passed): each with
    its status (sent, failed, or still pending), attempts and error."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        rows: list[dict[str, Any]] = _call(
            "GET", identity, params={"dag_id": identity.dag_id, "run_id": identity.run_id}
        )
        if all(r["status"] in ("sent", "failed") for r in rows) or time.monotonic() >= deadline:
            return rows
        time.sleep(poll)
