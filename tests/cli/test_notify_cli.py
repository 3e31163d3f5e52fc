"""`python -m release_mgmt notify test CHANNEL` against a real SMTP server and a real webhook receiver on loopback
(connections from AIRFLOW_CONN_* as on any Airflow machine), and `validate` checking the directory and shared
rules files even before a definition uses them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import minimal_definition, write_definition
from tests.servers import Reply

DIRECTORY = {
    "channels": {
        "release-mail": {"connection": "cli_smtp", "kind": "email"},
        "ops-chat": {"connection": "cli_hook", "kind": "webhook", "format": "teams"},
    },
    "users": {"bob": {"email": "bob@example.com"}},
}


def _cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "release_mgmt", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env},
    )


def _include(tmp_path: Path) -> Path:
    (tmp_path / "include" / "releases").mkdir(parents=True)
    (tmp_path / "include" / "directory.yaml").write_text(yaml.safe_dump(DIRECTORY))
    return tmp_path


def test_a_test_mail_reaches_the_directory_user(tmp_path: Path, smtp_server) -> None:
    done = _cli(
        "notify",
        "test",
        "release-mail",
        "--to",
        "bob",
        cwd=_include(tmp_path),
        AIRFLOW_CONN_CLI_SMTP=smtp_server.connection(),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == (
        "sent a test message through release-mail (email through connection cli_smtp) to bob@example.com"
    )
    [mail] = smtp_server.wait_for(1)
    assert mail.recipients == ["bob@example.com"]
    assert mail.message["Subject"] == "[release_mgmt] Test message through release-mail"
    assert "release notifications through this channel will reach you" in mail.part("plain")
    assert "smtp-s3cret-pw" not in done.stdout + done.stderr


def test_a_failing_webhook_is_a_failure_with_its_reason(tmp_path: Path, http_server) -> None:
    http_server.script("/hook", default=Reply(503, "down for maintenance"))
    conn = json.dumps({"conn_type": "http", "host": f"{http_server.url}/hook"})
    done = _cli("notify", "test", "ops-chat", cwd=_include(tmp_path), AIRFLOW_CONN_CLI_HOOK=conn)
    assert done.returncode == 1
    assert "FAILED: ops-chat (webhook through connection cli_hook): the webhook answered 503" in done.stderr
    assert json.loads(http_server.seen[0].body)["@type"] == "MessageCard"


def test_wrong_channel_or_recipient_is_named(tmp_path: Path) -> None:
    root = _include(tmp_path)
    unknown = _cli("notify", "test", "pager", cwd=root)
    assert unknown.returncode == 2
    assert "no channel 'pager' in include/directory.yaml; channels: ops-chat, release-mail" in unknown.stderr
    nobody = _cli("notify", "test", "release-mail", cwd=root)
    assert nobody.returncode == 2
    assert "an email channel needs --to" in nobody.stderr
    missing = _cli("notify", "test", "ops-chat", cwd=root, AIRFLOW_CONN_CLI_HOOK="")
    assert missing.returncode == 1
    assert "cli_hook" in missing.stderr


def test_validate_checks_the_directory_and_shared_rules_unused_or_not(tmp_path: Path) -> None:
    root = _include(tmp_path)
    write_definition(root / "include" / "releases", "quiet.yaml", minimal_definition("quiet"))
    (root / "include" / "notify").mkdir()
    (root / "include" / "notify" / "oncall.yaml").write_text("rules:\n  - {events: [run.failed]}\n")
    done = _cli("validate", "include/releases", cwd=root)
    assert done.returncode == 1
    assert "include/directory.yaml: ok: directory" in done.stdout
    assert "oncall.yaml:2: rules[0].channels: required key is missing" in done.stdout or (
        "oncall.yaml:2: rules[0].channels: field required" in done.stdout
    ), done.stdout
    (root / "include" / "directory.yaml").write_text("channels: {mail: {connection: x, kind: pigeon}}\n")
    (root / "include" / "notify" / "oncall.yaml").unlink()
    done = _cli("validate", "include/releases", cwd=root)
    assert done.returncode == 1
    assert "directory.yaml:1: channels.mail.kind: input should be 'email' or 'webhook'" in done.stdout


def test_validate_connections_names_missing_and_mistyped_ones(tmp_path: Path, smtp_server) -> None:
    """With --connections, each channel's connection must exist (as this machine's Airflow finds it) and be of
    its kind's type; without, validate stays free of Airflow's configuration (as CI runs it)."""
    root = _include(tmp_path)
    write_definition(root / "include" / "releases", "quiet.yaml", minimal_definition("quiet"))
    assert _cli("validate", "include/releases", cwd=root).returncode == 0
    done = _cli(
        "validate", "--connections", "include/releases", cwd=root, AIRFLOW_CONN_CLI_HOOK=smtp_server.connection()
    )
    assert done.returncode == 1
    assert "channels.release-mail.connection: no Airflow connection 'cli_smtp'; create it or fix the id" in done.stdout
    assert (
        "channels.ops-chat.connection: connection 'cli_hook' is of type 'smtp'; a webhook channel needs" in done.stdout
    )
    good = _cli(
        "validate",
        "--connections",
        "include/releases",
        cwd=root,
        AIRFLOW_CONN_CLI_SMTP=smtp_server.connection(),
        AIRFLOW_CONN_CLI_HOOK=json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9/hook"}),
    )
    assert good.returncode == 0, good.stdout
    assert "include/directory.yaml: ok: directory" in good.stdout
