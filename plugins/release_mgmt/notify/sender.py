"""The outbox's sender: one daemon thread per service process, woken when messages are queued, that delivers
what is due (change_service/outbox.py), each attempt bounded (channels.TIMEOUT_SECONDS), failures retried with
backoff up to outbox.ATTEMPTS times. Release tasks never wait for it: sending is off the deploy path."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from release_mgmt.change_service.outbox import OutboxStore
from release_mgmt.masking import redact
from release_mgmt.notify.channels import DeliveryError, deliver

log = logging.getLogger(__name__)
#: how often a sender looks for messages due again (retries after a backoff, rows of a dead sender)
IDLE_SECONDS = 1.0
#: rounds with nothing to send (or no database) after which the thread ends until the next hand-over
IDLE_ROUNDS = 30


class Sender:
    """Delivers one outbox's messages on a thread of its own."""

    def __init__(self, store: OutboxStore, send: Callable[[Mapping[str, Any]], None] = deliver) -> None:
        self.store = store
        self.send = send
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def nudge(self) -> None:
        """Deliver soon: wake the thread, starting it when none runs."""
        with self.lock:
            self.wake.set()
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name="release_mgmt-notify", daemon=True)
                self.thread.start()

    def drain_once(self) -> int:
        """Deliver every message due now (one attempt each); how many were attempted."""
        done = 0
        while batch := self.store.claim():
            for message in batch:
                error = ""
                try:
                    self.send(message)
                except DeliveryError as exc:
                    error = redact(str(exc))
                except Exception as exc:  # noqa: BLE001 - the sender outlives any one message
                    error = redact(f"{type(exc).__name__}: {exc}")
                status = self.store.finish(message["id"], error)
                if error:
                    log.warning("notification %s via %s: %s (%s)", message["key"], message["channel"], error, status)
                done += 1
        return done

    def _loop(self) -> None:
        """Deliver what is due, then look again every IDLE_SECONDS while anything waits (a retry's backoff); with
        nothing left for IDLE_ROUNDS rounds the thread ends, and the next hand-over starts another."""
        idle, failing = 0, False
        while True:
            self.wake.clear()
            busy = False
            try:
                busy = bool(self.drain_once()) or self.store.pending()
                failing = False
            except Exception as exc:  # noqa: BLE001 - a database hiccup: said once, tried again next round
                if not failing:
                    log.warning("the notification sender could not read the outbox: %s", exc)
                failing = True
            idle = 0 if busy else idle + 1
            if idle >= IDLE_ROUNDS:
                with self.lock:
                    if not self.wake.is_set():
                        self.thread = None
                        return
                idle = 0
            self.wake.wait(IDLE_SECONDS)


_senders: dict[int, Sender] = {}
_made = threading.Lock()


def sender_for(store: OutboxStore) -> Sender:
    """The process's sender of ``store`` (one per store)."""
    with _made:
        if id(store) not in _senders:
            _senders[id(store)] = Sender(store)
        return _senders[id(store)]
