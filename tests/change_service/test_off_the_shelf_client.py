"""pysnow, a third-party ServiceNow client nobody here wrote, works unchanged against the built-in change service
(issue 18): create, look up by correlation_id, its QueryBuilder's operators, paging with offsets, update (pysnow
sends PUT), field lists, delete, and the approvals table. It runs in its own virtualenv (its pins clash with
Airflow's), over real HTTP, with HTTP Basic as it defaults to."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from release_mgmt.change_service.app import create_app
from release_mgmt.change_service.callers import basic_auth
from release_mgmt.change_service.store import ChangeStore
from tests.servers import serve_app

REPO = Path(__file__).resolve().parents[2]
CLIENTS = REPO / ".venv-clients/bin/python"
USERS = {"integration": ("int-pw", "release_task"), "ada": ("ada-pw", "admin")}


def test_pysnow_works_unchanged(tmp_path: Path) -> None:
    assert CLIENTS.exists(), "run scripts/bootstrap.sh: it makes .venv-clients with pysnow"
    store = ChangeStore(f"sqlite:///{tmp_path / 'changes.db'}")
    with serve_app(create_app(store, basic_auth(USERS))) as url:
        host = url.removeprefix("http://")
        run = subprocess.run(
            [
                str(CLIENTS),
                str(REPO / "tests/clients/pysnow_session.py"),
                host,
                "integration",
                "int-pw",
                "ada",
                "ada-pw",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout)
    numbers = [f"CHG{n:07d}" for n in range(1, 26)]
    assert seen["numbers"] == numbers
    assert seen["by_correlation"] == ["CHG0000008"]
    # risk=1 AND (starts with "shop 1" OR ends with "2"): shop 1, 10, 13, 16, 19, 22 have risk 1; of them
    # "shop 1", "shop 10", "shop 13", "shop 16", "shop 19" start with "shop 1" and "shop 22" ends with 2
    assert seen["query_builder"] == ["CHG0000023", "CHG0000020", "CHG0000017", "CHG0000014", "CHG0000011", "CHG0000002"]
    assert seen["pages"] == [numbers[:10], numbers[10:20], numbers[20:]]
    assert seen["total"] == "25"
    assert seen["updated"] == "-4"
    assert seen["fields"] == {"number": "CHG0000002", "state": "-5"}
    assert seen["after_delete"] == 24
    assert seen["approvals"] == []
    first = store.get(store.query([("number", "=", "CHG0000001")], 1)[0]["sys_id"])
    assert first is not None
    assert first["work_notes"].endswith("assessed")
