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
#: how often an idle sender looks for messages due again (retries after a backoff, rows of a dead sender)
IDLE_SECONDS = 1.0


class Sender:
    """Delivers one outbox's messages on a thread of its own."""

    def __init__(self, store: OutboxStore, send: Callable[[Mapping[str, Any]], None] = deliver) -> None:
        self.store = store
        self.send = send
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def nudge(self) -> None:
        """Deliver soon: start the thread when it is not running, and wake it."""
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="release_mgmt-notify", daemon=True)
                self.thread.start()
        self.wake.set()

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
        while True:
            try:
                self.drain_once()
            except Exception:
                log.exception("the notification sender could not read the outbox")
            self.wake.wait(IDLE_SECONDS)
            self.wake.clear()


_senders: dict[int, Sender] = {}
_made = threading.Lock()


def sender_for(store: OutboxStore) -> Sender:
    """The process's sender of ``store`` (one per store)."""
    with _made:
        if id(store) not in _senders:
            _senders[id(store)] = Sender(store)
        return _senders[id(store)]
