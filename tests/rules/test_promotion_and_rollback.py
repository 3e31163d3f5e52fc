"""The promotion, superseded and rollback rules, without Airflow."""

from __future__ import annotations

from dataclasses import dataclass

from release_mgmt.rules.promotion import promotion_problems, superseded
from release_mgmt.rules.rollback import skip_reason


@dataclass(frozen=True)
class Record:
    version: str
    run_id: str = "r1"
    run_after: str = "2026-11-27T10:00:00+00:00"

    def describe(self) -> str:
        return f"{self.version} from {self.run_id}"


def test_promotion_names_each_version_staging_does_not_run() -> None:
    """Every component must run in the source environment at exactly the version promoted."""
    versions = {"api": "1.3.0", "web": "2.0.0", "db": "5"}
    recorded = {"api": Record("1.3.0"), "web": Record("1.9.0"), "db": None}
    assert promotion_problems(versions, "staging", recorded) == [
        "web 2.0.0 is not what staging runs (1.9.0 from r1)",
        "db 5 was never deployed to staging",
    ]
    assert promotion_problems({"api": "1.3.0"}, "staging", recorded) == []


def test_superseded_only_by_a_later_run_with_another_version() -> None:
    """A deploy is refused only when a run triggered later already put another version there."""
    later = Record("1.4.0", run_id="r2", run_after="2026-11-27T11:00:00+00:00")
    ours = {"run_id": "r1", "run_after": "2026-11-27T10:30:00+00:00"}
    assert superseded(later, **ours, version="1.3.0")
    assert not superseded(later, **ours, version="1.4.0")  # the same version moves nothing backwards
    assert not superseded(Record("1.2.0", "r0", "2026-11-27T09:00:00+00:00"), **ours, version="1.3.0")
    assert not superseded(None, **ours, version="1.3.0")
    assert not superseded(Record("1.4.0", "r1", "2026-11-27T11:00:00+00:00"), **ours, version="1.3.0")
    assert not superseded(later, run_id="r1", run_after="", version="1.3.0")


def test_rollback_only_for_a_changed_component_of_a_failed_environment() -> None:
    """Skipped on a dry run, when the environment succeeded, or when this run never changed the component."""
    failed = {"deploy_api": "success", "validate_api": "failed", "deploy_web": None}
    assert skip_reason(failed, "api", dry_run=False, started=True) is None
    assert skip_reason(failed, "api", dry_run=True, started=True) == "dry run"
    assert skip_reason(failed, "web", dry_run=False, started=False) == "web was not changed by this run"
    assert skip_reason({"deploy_api": "success"}, "api", dry_run=False, started=True) == "the environment succeeded"
