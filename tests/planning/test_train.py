"""A train's plan: the release plan of its members, with the train's operators where it differs; exact edges."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from release_mgmt.definition.trains import load_train
from release_mgmt.errors import DefinitionError
from release_mgmt.planning.train import plan_train
from tests.definition.test_trains import RELEASES, REPO


def plan(tmp_path: Path, **extra: object):
    train = {
        "name": "q4",
        "owner": "release-office",
        "members": [
            {"release": "identity"},
            {"release": "payments", "after": ["identity"], "versions": {"api": "1.5.0"}},
            {"release": "web"},
        ],
        "environments": [{"name": "dev"}, {"name": "prod", "change": {"authorizers": {"users": ["bob", "carol"]}}}],
        **extra,
    }
    (tmp_path / "trains").mkdir()
    (tmp_path / "trains" / "q4.yaml").write_text(yaml.safe_dump(train))
    return plan_train(load_train(tmp_path / "trains" / "q4.yaml", RELEASES))


def test_members_run_in_dependency_order_in_each_environment(tmp_path: Path) -> None:
    """payments starts after identity in every environment; web goes alongside; prod waits for dev's result."""
    found = plan(tmp_path, on_member_failure="rollback_train")
    tasks = {t.task_id: t for t in found.tasks()}
    assert found.dag_id == "train_q4"
    assert tasks["dev.deploy_payments"].upstream == ("dev.deploy_identity",)
    assert tasks["dev.deploy_web"].upstream == ("dev.enter",)
    assert tasks["prod.enter"].upstream == ("preflight", "dev.result")
    assert tasks["prod.deploy_identity"].upstream == ("prod.change_authorized",)
    assert tasks["prod.deploy_payments"].operator == "release_mgmt.operators.train.TrainStageOperator"
    assert tasks["prod.deploy_payments"].arguments == {
        "environment": "prod",
        "member": "payments",
        "policy": "rollback_train",
        "poke_seconds": 30,
        "waive_gates": False,
        "retries": 0,
    }
    assert tasks["prod.rollback_identity"].operator == "release_mgmt.operators.train.TrainRevertOperator"
    assert tasks["prod.change_open"].operator == "release_mgmt.operators.train.TrainChangeOpenOperator"
    text = tasks["prod.change_open"].arguments["implementation_plan"]
    assert text.splitlines()[1:] == [
        "- identity: release_identity for prod: api",
        "- web: release_web for prod: api",
        "- payments (after identity): release_payments for prod: api",
    ]
    members = found.preflight.arguments["members"]
    assert list(members) == ["identity", "web", "payments"]
    assert members["payments"] == {
        "components": ["api"],
        "defaults": {"api": "1.0.0"},
        "sources": {},
        "pins": {"api": "1.5.0"},
    }


def test_without_rollback_train_there_is_no_revert(tmp_path: Path) -> None:
    """stop and continue never redeploy a member: no rollback task is planned."""
    found = plan(tmp_path)
    assert not [t for t in found.tasks() if t.kind == "rollback"]


def test_the_trains_calendars_bind_every_environment_entry(tmp_path: Path) -> None:
    """calendars: [company] adds the shared calendar's windows to the train's own: each environment's entry waits
    them out (and an unknown calendar is an error naming the key)."""
    (tmp_path / "calendars").mkdir()
    (tmp_path / "calendars" / "company.yaml").write_text((REPO / "include/calendars/company.yaml").read_text())
    found = plan(tmp_path, calendars=["company"])
    enter = next(t for t in found.tasks() if t.task_id == "prod.enter")
    assert {w["name"] for w in enter.arguments["windows"]} >= {"year-end", "black-friday"}
    (tmp_path / "trains" / "q4.yaml").write_text(
        (tmp_path / "trains" / "q4.yaml").read_text().replace("company", "nope")
    )
    with pytest.raises(DefinitionError, match=r"calendars\[0\]: no calendar"):
        load_train(tmp_path / "trains" / "q4.yaml", RELEASES)
