"""History lines and the DORA figures from run summaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from release_mgmt.reports.history import EnvRun, RunSummary, dora, lines

T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


def _run(day: int, prod: str, minutes: int = 30, **extra) -> RunSummary:
    started = T0 + timedelta(days=day)
    return RunSummary(
        f"run{day}",
        started,
        "alice",
        {"api": f"1.{day}.0"},
        {"dev": EnvRun("succeeded"), "prod": EnvRun(prod, finished=started + timedelta(minutes=minutes), **extra)},
    )


def test_dora_figures() -> None:
    """4 prod runs over 6 days: 3 good, 1 failed and restored 2 days later; lead time is the median."""
    runs = [
        _run(0, "succeeded", 20),
        _run(2, "rolled_back", 40),
        _run(4, "succeeded", 30),
        _run(6, "succeeded", 50),
        _run(7, "not_selected"),
    ]
    figures = dora(runs, "prod")
    assert figures["deployments_per_day"] == round(3 / 7, 3)
    assert figures["lead_time"] == timedelta(minutes=30)
    assert figures["change_failure_rate"] == 0.25
    assert figures["time_to_restore"] == timedelta(days=2, minutes=-10)
    assert figures["production_deployments"] == 4


def test_no_runs_no_figures() -> None:
    """Without runs the figures are empty, not an error."""
    assert dora([], "prod")["change_failure_rate"] is None


def test_lines_show_versions_approvers_and_changes() -> None:
    """Newest first, one line per environment the run touched, with its approvers, change and authorizers."""
    out = lines(
        [
            _run(0, "succeeded", approvers=("bob",), change="CHG0000001", authorized_by=("carol",)),
            _run(1, "not_selected"),
        ],
        ["dev", "prod"],
    )
    assert out[0].split()[1:4] == ["dev", "succeeded", "api=1.1.0"]
    assert out[-1].endswith("run0  (approvers bob; change CHG0000001; authorized by carol)")
    assert not any("not_selected" in line for line in out)
