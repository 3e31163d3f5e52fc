"""The notification outbox: messages release tasks hand over, delivered off the deploy path by the service's
sender (notify/sender.py). One row per message, its key unique: a retried task that hands the same message over
again finds it there and nothing is sent twice. Each row keeps how delivery went (sent, or failed and why), which
the run's summary writes as audit lines and the evidence report shows."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Float, Integer, String, Text, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
#: delivery attempts per message, and the waits between them (seconds): bounded, a minute at most in all
ATTEMPTS, BACKOFF = 3, (2.0, 10.0)
#: a row left "sending" this long by a process that died is taken up again
STALE_SECONDS = 120.0
#: what a message may hold (the task renders it; the service stores it as given)
FIELDS = ("key", "event", "environment", "channel", "kind", "connection", "format", "recipient", "address")
TEXTS = ("subject", "text", "html", "payload")
LIMITS = {"subject": 300, "text": 20_000, "html": 60_000, "payload": 60_000}


class _Base(DeclarativeBase):
    pass


class Notification(_Base):
    __tablename__ = "release_mgmt_notification"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    dag_id: Mapped[str] = mapped_column(String(250), index=True)
    run_id: Mapped[str] = mapped_column(String(250), index=True)
    task_id: Mapped[str] = mapped_column(String(250))
    event: Mapped[str] = mapped_column(String(60))
    environment: Mapped[str] = mapped_column(String(100), default="")
    channel: Mapped[str] = mapped_column(String(60))
    kind: Mapped[str] = mapped_column(String(20))
    connection: Mapped[str] = mapped_column(String(250))
    format: Mapped[str] = mapped_column(String(20), default="json")
    recipient: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    subject: Mapped[str] = mapped_column(String(300))
    text: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(10), default=PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due: Mapped[float] = mapped_column(Float, default=0.0)
    claimed_at: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str] = mapped_column(String(500), default="")
    queued_on: Mapped[str] = mapped_column(String(40))
    finished_on: Mapped[str] = mapped_column(String(40), default="")

    def view(self) -> dict[str, Any]:
        """What a reader of the ledger sees (never the message body)."""
        return {
            "key": self.key,
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "event": self.event,
            "environment": self.environment,
            "channel": self.channel,
            "recipient": self.recipient,
            "subject": self.subject,
            "status": self.status,
            "attempts": self.attempts,
            "error": self.error,
            "queued_on": self.queued_on,
            "finished_on": self.finished_on,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class OutboxStore:
    """The outbox in the database of ``engine`` (table made when missing)."""

    def __init__(self, engine: Engine, clock: Any = time.time) -> None:
        self.engine = engine
        self.clock = clock
        _Base.metadata.create_all(engine)

    def enqueue(self, dag_id: str, run_id: str, task_id: str, messages: Iterable[Mapping[str, str]]) -> list[str]:
        """Queue each message unless its key is already there: "queued" or "duplicate", in order."""
        answers = []
        for message in messages:
            row = Notification(
                dag_id=dag_id,
                run_id=run_id,
                task_id=task_id,
                **{k: str(message.get(k, "")) for k in (*FIELDS, *TEXTS)},
                queued_on=_now(),
                due=self.clock(),
            )
            try:
                with Session(self.engine) as session, session.begin():
                    session.add(row)
                answers.append("queued")
            except IntegrityError:  # the key is there: a retried task handing the same message over again
                answers.append("duplicate")
        return answers

    def claim(self, limit: int = 20) -> list[dict[str, Any]]:
        """Messages due now, marked as being sent by the caller (a row another sender claimed first is skipped;
        one a dead sender left behind is due again after STALE_SECONDS)."""
        now = self.clock()
        with Session(self.engine) as session:
            due = session.scalars(
                select(Notification.id)
                .where(
                    ((Notification.status == PENDING) & (Notification.due <= now))
                    | ((Notification.status == SENDING) & (Notification.claimed_at < now - STALE_SECONDS))
                )
                .order_by(Notification.id)
                .limit(limit)
            ).all()
        claimed = []
        for row_id in due:
            with Session(self.engine) as session, session.begin():
                taken = session.execute(
                    update(Notification)
                    .where(
                        Notification.id == row_id,
                        (Notification.status == PENDING)
                        | ((Notification.status == SENDING) & (Notification.claimed_at < now - STALE_SECONDS)),
                    )
                    .values(status=SENDING, claimed_at=now, attempts=Notification.attempts + 1)
                )
                if taken.rowcount == 1:  # type: ignore[attr-defined]
                    row = session.get(Notification, row_id)
                    assert row is not None
                    claimed.append({c: getattr(row, c) for c in ("id", "attempts", *FIELDS, *TEXTS)})
        return claimed

    def finish(self, row_id: int, error: str = "") -> str:
        """Record one attempt: sent; or failed, due again after a backoff until the attempts are spent."""
        with Session(self.engine) as session, session.begin():
            row = session.get(Notification, row_id)
            if row is None:
                return ""
            if not error:
                row.status, row.error, row.finished_on = SENT, "", _now()
            elif row.attempts >= ATTEMPTS:
                row.status, row.error, row.finished_on = FAILED, error[:500], _now()
            else:
                row.status, row.error = PENDING, error[:500]
                row.due = self.clock() + BACKOFF[min(row.attempts, len(BACKOFF)) - 1]
            return row.status

    def pending(self) -> bool:
        with Session(self.engine) as session:
            stmt = select(Notification.id).where(Notification.status.in_((PENDING, SENDING))).limit(1)
            return session.scalars(stmt).first() is not None

    def ledger(self, dag_id: str, run_id: str | None = None) -> list[dict[str, Any]]:
        """The messages of a DAG (one run's, when given), in the order they were queued."""
        with Session(self.engine) as session:
            stmt = select(Notification).where(Notification.dag_id == dag_id)
            if run_id is not None:
                stmt = stmt.where(Notification.run_id == run_id)
            return [row.view() for row in session.scalars(stmt.order_by(Notification.id))]
