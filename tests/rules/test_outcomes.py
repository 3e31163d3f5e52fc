"""Environment outcomes derived from task states."""

from __future__ import annotations

from release_mgmt.rules.outcomes import environment_outcome, needs_rollback


def test_success() -> None:
    """All work succeeded and rollbacks skipped: succeeded."""
    states = {"enter": "success", "deploy_api": "success", "validate_api": "success", "rollback_api": "skipped"}
    assert environment_outcome(states).status == "succeeded"
    assert not needs_rollback(states, "api")


def test_failed_validation_rolled_back() -> None:
    """A failed validation with a successful rollback reads as rolled back, naming both."""
    states = {
        "enter": "success",
        "deploy_db": "success",
        "validate_db": "success",
        "deploy_api": "success",
        "validate_api": "failed",
        "rollback_api": "success",
        "rollback_db": "success",
    }
    outcome = environment_outcome(states)
    assert outcome.status == "rolled_back"
    assert outcome.is_failure
    assert outcome.sentence("dev") == "dev: FAILED (validate_api failed); rolled back: api, db"


def test_untouched_component_needs_no_rollback() -> None:
    """A component whose deploy never ran (upstream failed) is not rolled back."""
    states = {"deploy_db": "failed", "deploy_api": "upstream_failed"}
    assert needs_rollback(states, "db")
    assert not needs_rollback(states, "api")


def test_rollback_failure_is_loud() -> None:
    """A failed rollback asks for a manual restore."""
    states = {"enter": "success", "deploy_api": "failed", "rollback_api": "failed"}
    outcome = environment_outcome(states)
    assert outcome.status == "rollback_failed"
    assert "ROLLBACK FAILED: api; restore by hand" in outcome.sentence("prod")


def test_not_selected_and_not_started() -> None:
    """Unselected environments are not failures; selected ones that never started are."""
    assert not environment_outcome({"enter": "skipped"}, selected=False).is_failure
    assert environment_outcome({"enter": "upstream_failed"}).status == "not_started"
    assert environment_outcome({"enter": "skipped"}).is_failure


def test_failed_gate_fails_the_environment_without_rollback() -> None:
    """A rejected gate fails the environment; nothing was deployed, so nothing rolls back."""
    states = {"enter": "success", "gate_approval": "failed", "deploy_api": "upstream_failed", "rollback_api": "skipped"}
    outcome = environment_outcome(states)
    assert (outcome.status, outcome.failed_tasks) == ("failed", ("gate_approval",))
    assert outcome.sentence("prod") == "prod: FAILED (gate_approval failed)"
    assert not needs_rollback(states, "api")


def test_lock_not_granted_fails_the_environment_naming_it() -> None:
    """A lock that timed out stops the environment before any deploy, and the sentence says so."""
    states = {"enter": "success", "lock": "failed", "deploy_api": "upstream_failed", "rollback_api": "skipped"}
    outcome = environment_outcome(states)
    assert outcome.status == "failed"
    assert outcome.sentence("prod") == "prod: FAILED (lock failed)"


def test_a_failed_gate_says_who_rejected_and_why() -> None:
    """The sentence of a failed environment carries the reason its failed tasks gave."""
    outcome = environment_outcome({"enter": "success", "gate_approval": "failed", "deploy_api": "upstream_failed"})
    assert outcome.sentence("prod", {"gate_approval": "rejected by bob: error budget exhausted"}) == (
        "prod: FAILED (gate_approval failed); gate_approval: rejected by bob: error budget exhausted"
    )
    assert outcome.sentence("prod") == "prod: FAILED (gate_approval failed)"
