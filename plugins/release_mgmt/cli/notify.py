"""``notify test CHANNEL``: send one test message through a channel of the directory, now, from this process
(its Airflow connection as this machine's Airflow configuration finds it), to check a channel before a release
depends on it; ``notify events``: the notification events rules may name."""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from release_mgmt.cli.common import DEFAULT_RELEASES
from release_mgmt.definition.notify_files import DIRECTORY_FILE
from release_mgmt.definition.notify_rules import EMAIL, EVENTS, Directory


def cmd_test(args: argparse.Namespace) -> int:
    from release_mgmt.definition.shared import load_model
    from release_mgmt.errors import DefinitionError
    from release_mgmt.notify.channels import DeliveryError, deliver

    file = Path(args.directory) if args.directory else Path(args.releases).parent / DIRECTORY_FILE
    if not file.is_file():
        print(f"error: no directory {file} (channels: and users:); --directory names another", file=sys.stderr)
        return 2
    try:
        directory = load_model(file, Directory)
    except DefinitionError as exc:
        print("\n".join(exc.lines()), file=sys.stderr)
        return 1
    channel = directory.channels.get(args.channel)
    if channel is None:
        known = ", ".join(directory.channels) or "none"
        print(f"error: no channel {args.channel!r} in {file}; channels: {known}", file=sys.stderr)
        return 2
    address = _address(directory, args.to) if args.to else ""
    if channel.kind == "email" and not address:
        print("error: an email channel needs --to (a directory user with an email, or an address)", file=sys.stderr)
        return 2
    message = test_message(args.channel, channel.model_dump(), address)
    where = f"{args.channel} ({channel.kind} through connection {channel.connection})"
    try:
        deliver(message)
    except DeliveryError as exc:
        print(f"FAILED: {where}: {exc}", file=sys.stderr)
        return 1
    print(f"sent a test message through {where}" + (f" to {address}" if address else ""))
    return 0


def _address(directory: Directory, to: str) -> str:
    if EMAIL.match(to):
        return to
    person = directory.users.get(to)
    return (person.email or "") if person else ""


def test_message(name: str, channel: dict[str, Any], address: str) -> dict[str, str]:
    """The test message, shaped like an outbox row."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    text = (
        f"This is a test message from release_mgmt on {socket.gethostname()} at {now}, sent through channel {name}.\n"
        "If you read it, release notifications through this channel will reach you."
    )
    subject = f"[release_mgmt] Test message through {name}"
    return {
        "key": hashlib.sha256(f"test|{name}|{address}|{now}".encode()).hexdigest(),
        "event": "test",
        "channel": name,
        "kind": channel["kind"],
        "connection": channel["connection"],
        "format": channel["format"],
        "address": address,
        "subject": subject,
        "text": text,
        "html": f"<html><body><p>{text}</p></body></html>",
        "payload": json.dumps({"event": "test", "channel": name}),
    }


def cmd_events(args: argparse.Namespace) -> int:
    for name, kind in EVENTS.items():
        audit = kind.audit + (f" ({kind.outcome})" if kind.outcome else "")
        print(f"{name:<32} {kind.says}  [audit event {audit}]")
    return 0


def add_commands(sub: Any) -> None:
    group = sub.add_parser("notify", help="check notification channels; list the events rules may name")
    commands = group.add_subparsers(dest="notify_command", required=True)
    test = commands.add_parser("test", help="send a test message through a channel of the directory, now")
    test.add_argument("channel", help="a channel name of the directory (include/directory.yaml)")
    test.add_argument("--to", help="for an email channel: a directory user or an e-mail address")
    test.add_argument("--directory", help=f"the directory file (default: {DIRECTORY_FILE} beside the releases)")
    test.add_argument("--releases", default=str(DEFAULT_RELEASES), help="definitions folder (to find the directory)")
    test.set_defaults(func=cmd_test)
    events = commands.add_parser("events", help="the notification events rules may name")
    events.set_defaults(func=cmd_events)
