"""Freeze and maintenance windows: boundaries, DST, year ends, leap days, and a brute-force cross-check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from release_mgmt.definition.calendars import Window, to_utc
from release_mgmt.rules.windows import decide

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")


def _w(**fields) -> Window:
    base = {"name": "w", "kind": "freeze", "reason": "test", "timezone": "Europe/Berlin"}
    return Window.model_validate({**base, **fields})


def _at(zone: ZoneInfo, *parts: int, fold: int = 0) -> datetime:
    year, month, day, hour, minute = (*parts, 0, 0)[:5]
    return datetime(year, month, day, hour, minute, tzinfo=zone, fold=fold).astimezone(UTC)


def test_one_off_start_inclusive_end_exclusive() -> None:
    """A window covers its start instant and not its end instant."""
    w = _w(start="2026-12-20 00:00", end="2027-01-02 00:00")  # across the year end
    assert w.occurrence_at(_at(BERLIN, 2026, 12, 20, 0, 0)) is not None
    assert w.occurrence_at(_at(BERLIN, 2026, 12, 19, 23, 59, 59)) is None
    assert w.occurrence_at(_at(BERLIN, 2026, 12, 31, 23, 59)) is not None
    assert w.occurrence_at(_at(BERLIN, 2027, 1, 2, 0, 0)) is None


def test_start_in_the_skipped_hour_lands_past_the_gap() -> None:
    """Berlin skips 02:00-03:00 on 2026-03-29: a 02:30 daily start begins 03:30 CEST that day."""
    w = _w(cron="30 2 * * *", duration="1h")
    occ = w.occurrence_at(_at(BERLIN, 2026, 3, 29, 4, 0))
    assert occ is not None
    assert occ.start == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST
    assert w.occurrence_at(_at(BERLIN, 2026, 3, 29, 3, 29)) is None


def test_start_in_the_repeated_hour_happens_once() -> None:
    """New York repeats 01:00-02:00 on 2026-11-01: a 01:30 start happens the first time only."""
    w = _w(cron="30 1 * * *", duration="20m", timezone="America/New_York")
    first = _at(NEW_YORK, 2026, 11, 1, 1, 40, fold=0)  # EDT
    second = _at(NEW_YORK, 2026, 11, 1, 1, 40, fold=1)  # EST, an hour later
    assert w.occurrence_at(first) is not None
    assert w.occurrence_at(second) is None
    assert second - first == timedelta(hours=1)


def test_leap_day_rrule() -> None:
    """A yearly Feb 29 window opens in leap years only."""
    w = _w(
        rrule="FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=0;BYMINUTE=0;BYSECOND=0",
        duration="1d",
        starting="2026-01-01 00:00",
    )
    occurrences = list(w.occurrences(_at(BERLIN, 2026, 1, 1, 0, 0), _at(BERLIN, 2033, 1, 1, 0, 0)))
    assert [o.start.astimezone(BERLIN).date().isoformat() for o in occurrences] == ["2028-02-29", "2032-02-29"]


def test_overlapping_freezes_wait_for_the_last_end() -> None:
    """Two overlapping freezes: a deployment waits until the later one ends, named in the reason."""
    windows = [
        _w(name="close", start="2026-12-28 00:00", end="2027-01-02 00:00"),
        _w(name="audit", start="2027-01-01 00:00", end="2027-01-05 12:00"),
    ]
    d = decide(windows, _at(BERLIN, 2026, 12, 30, 9, 0), environment="prod", release="shop")
    assert (d.kind, d.until) == ("wait", _at(BERLIN, 2027, 1, 5, 12, 0))
    assert d.reason.startswith("frozen: freeze close (test) 2026-12-28 00:00 CET")


def test_freeze_scope() -> None:
    """A freeze scoped to prod does not stop dev; one scoped to another release does not stop this one."""
    freeze = _w(start="2026-12-20 00:00", end="2026-12-27 00:00", environments=["prod"], releases=["billing"])
    t = _at(BERLIN, 2026, 12, 22, 12, 0)
    assert decide([freeze], t, environment="prod", release="shop").kind == "go"
    assert decide([freeze], t, environment="dev", release="billing").kind == "go"
    assert decide([freeze], t, environment="prod", release="billing").kind == "wait"


def test_maintenance_window_needs_time_left() -> None:
    """Saturday 22:00-02:00: at 01:30 with 45 minutes expected the next Saturday is the answer."""
    window = _w(kind="maintenance", cron="0 22 * * 6", duration="4h")
    t = _at(BERLIN, 2026, 6, 14, 1, 30)  # Sunday 01:30, 30 minutes left in the window
    assert decide([window], t, environment="prod", release="shop", expected=timedelta(minutes=20)).kind == "go"
    d = decide([window], t, environment="prod", release="shop", expected=timedelta(minutes=45))
    assert (d.kind, d.until) == ("wait", _at(BERLIN, 2026, 6, 20, 22, 0))


def test_freeze_inside_the_maintenance_window() -> None:
    """A freeze covering the next window's start moves the earliest start to the freeze's end."""
    windows = [
        _w(kind="maintenance", cron="0 22 * * 6", duration="4h"),
        _w(name="sale", start="2026-06-20 21:00", end="2026-06-20 23:00"),
    ]
    d = decide(
        windows, _at(BERLIN, 2026, 6, 18, 12, 0), environment="prod", release="shop", expected=timedelta(hours=1)
    )
    assert d.until == _at(BERLIN, 2026, 6, 20, 23, 0)


def test_a_freeze_then_a_maintenance_wait_says_both() -> None:
    """Frozen until Monday, then the next maintenance window is Saturday: the reason names the freeze, its
    end and that the rest of the wait is for the maintenance window (not just 'frozen until Monday')."""
    windows = [
        _w(kind="maintenance", name="weekend", cron="0 22 * * 6", duration="4h"),
        _w(name="sale", start="2026-06-15 00:00", end="2026-06-17 00:00"),
    ]
    d = decide(windows, _at(BERLIN, 2026, 6, 16, 12, 0), environment="prod", release="shop")
    assert d.until == _at(BERLIN, 2026, 6, 20, 22, 0)
    assert d.reason == (
        "frozen: freeze sale (test) 2026-06-15 00:00 CEST to 2026-06-17 00:00 CEST; "
        "then waiting for the next maintenance window: maintenance weekend (test) "
        "2026-06-20 22:00 CEST to 2026-06-21 02:00 CEST"
    )
    assert d.blocking is not None
    assert d.blocking.window.name == "sale"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cron": "0 0 30 2 *", "duration": "1h"}, "never opens"),
        ({"rrule": "FREQ=DAILY;COUNT=0", "duration": "1h"}, "never opens"),
        ({"start": "2026-01-02 00:00", "end": "2026-01-01 00:00"}, "is not after start"),
        ({"cron": "0 0 * * *", "duration": "1h", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"cron": "0 0 * * *", "duration": "0s"}, "must be longer than zero"),
        ({"cron": "61 0 * * *", "duration": "1h"}, "not a valid cron expression"),
        ({"rrule": "FREQ=SOMETIMES", "duration": "1h"}, "cannot be read"),
        ({"cron": "0 0 * * *"}, "needs a duration"),
        ({"start": "2026-01-01 00:00+01:00", "end": "2026-01-02 00:00"}, "without offset"),
    ],
)
def test_bad_windows(fields, message) -> None:
    """Windows that never open, end before they start or name unknown zones are refused with the reason."""
    with pytest.raises(ValidationError, match=message):
        _w(**fields)


def _brute_force(cron: str, zone: ZoneInfo, duration: timedelta, t: datetime) -> bool:
    """Reference: every local minute that matches the cron is a start; is t inside one of them?"""
    local = t.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
    minute = local - duration - timedelta(hours=3)  # a DST change moves wall clock by at most an hour
    while minute <= local + timedelta(hours=3):
        if croniter.match(cron, minute):
            start = to_utc(minute, zone)
            if start <= t < start + duration:
                return True
        minute += timedelta(minutes=1)
    return False


CRONS = st.builds(
    lambda m, h, dow: f"{m} {h} * * {dow}",
    st.sampled_from(["0", "15", "30", "45", "*/20"]),
    st.sampled_from(["0", "1", "2", "3", "22", "*/6", "1-3"]),
    st.sampled_from(["*", "0", "6", "1-5"]),
)
ZONES = st.sampled_from(["Europe/Berlin", "America/New_York", "UTC", "Australia/Lord_Howe", "Asia/Kolkata"])
# instants around the 2026 DST changes of Berlin and New York, and elsewhere, at minute resolution
INSTANTS = st.one_of(
    st.datetimes(datetime(2026, 3, 7), datetime(2026, 3, 31), timezones=st.just(UTC)),
    st.datetimes(datetime(2026, 10, 24), datetime(2026, 11, 3), timezones=st.just(UTC)),
    st.datetimes(datetime(2026, 1, 1), datetime(2027, 1, 1), timezones=st.just(UTC)),
).map(lambda d: d.replace(second=0, microsecond=0))


@settings(max_examples=60, deadline=None)
@given(cron=CRONS, zone=ZONES, minutes=st.integers(1, 600), t=INSTANTS)
def test_cron_window_matches_minute_by_minute_reference(cron: str, zone: str, minutes: int, t: datetime) -> None:
    """For random cron windows, zones, durations and instants, the window agrees with the brute force."""
    window = _w(cron=cron, duration=f"{minutes}m", timezone=zone)
    assert (window.occurrence_at(t) is not None) == _brute_force(cron, ZoneInfo(zone), timedelta(minutes=minutes), t)


@settings(max_examples=40, deadline=None)
@given(cron=CRONS, zone=ZONES, minutes=st.integers(1, 600), t=INSTANTS, expected=st.integers(0, 120))
def test_decision_matches_reference(cron: str, zone: str, minutes: int, t: datetime, expected: int) -> None:
    """A go for a maintenance window means: inside, with the expected minutes left (brute force)."""
    window = _w(kind="maintenance", cron=cron, duration=f"{minutes}m", timezone=zone)
    d = decide([window], t, environment="prod", release="shop", expected=timedelta(minutes=expected))
    inside_long_enough = _brute_force(cron, ZoneInfo(zone), timedelta(minutes=minutes), t) and (
        (occ := window.occurrence_at(t)) is not None and occ.end - t >= timedelta(minutes=expected)
    )
    assert (d.kind == "go") == inside_long_enough
    if d.kind == "wait" and d.until is not None:
        assert _brute_force(cron, ZoneInfo(zone), timedelta(minutes=minutes), d.until)


def test_waits_name_durations_as_people_write_them() -> None:
    """A wait for a maintenance window says how much of it must be left as 2h or 90m, never 2:00:00."""
    from release_mgmt.definition.durations import format_duration

    assert [format_duration(timedelta(seconds=s)) for s in (0, 90, 5400, 7200, 172800)] == [
        "0s",
        "90s",
        "90m",
        "2h",
        "2d",
    ]
    window = Window.model_validate(
        {
            "name": "night",
            "kind": "maintenance",
            "reason": "quiet",
            "cron": "0 22 * * *",
            "duration": "4h",
            "timezone": "UTC",
        }
    )
    at = datetime(2026, 11, 27, 12, tzinfo=UTC)
    decision = decide([window], at, environment="prod", release="shop", expected=timedelta(hours=2))
    assert "next with 2h left" in decision.reason
