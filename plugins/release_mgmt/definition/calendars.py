"""Freeze and maintenance windows: one-off or recurring (cron or RFC 5545 RRULE), each in its own time zone.

A recurring window's starts are wall-clock times in its time zone; each lasts ``duration`` of
elapsed time. A start inside a skipped hour (spring forward) is read with the offset from before
the change, so it lands as far past the gap as it was into it (02:30 becomes 03:30); a start in
a repeated hour (fall back) happens once, the first time (PEP 495 ``fold=0``). A window covers
``start <= t < end``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from dateutil import rrule as rrules
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from release_mgmt.definition.budget import BudgetExceededError, time_budget
from release_mgmt.definition.durations import Duration
from release_mgmt.errors import quoted

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,49}$")]
SEARCH_LIMIT = 5000  # occurrences looked at before a window counts as never opening again
#: the window horizon: local times a window may name (past it, time zone arithmetic overflows)
FIRST_YEAR, LAST_YEAR = 1970, 2199
#: how long validation searches for a recurring window's first opening
RULE_BUDGET_SECONDS = 2.0


def _zone(name: str) -> ZoneInfo:
    try:
        if len(name) > 64:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # a folder of the zone database ("Europe"), a long name
        raise ValueError(f"unknown time zone {quoted(name)}; use an IANA name such as Europe/Berlin or UTC") from None


def to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    """A wall-clock time in ``zone`` as a UTC instant (skipped times move past the gap, repeated ones: first)."""
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


class Window(BaseModel):
    """A freeze (no deployments) or maintenance window (deployments only inside)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: Name
    kind: Literal["freeze", "maintenance"]
    reason: str = Field(min_length=1, description="Why: shown in logs and in the calendar.")
    timezone: str = Field(description="IANA time zone of the times below, e.g. Europe/Berlin.")
    start: datetime | None = Field(default=None, description="One-off: local start, e.g. 2026-12-20 00:00.")
    end: datetime | None = Field(default=None, description="One-off: local end (exclusive).")
    cron: str | None = Field(default=None, description="Recurring: cron expression of the local start times.")
    rrule: str | None = Field(default=None, description="Recurring: RFC 5545 RRULE of the local start times.")
    starting: datetime | None = Field(default=None, description="First possible start of an RRULE (DTSTART).")
    duration: Duration | None = Field(default=None, description="Recurring: how long each occurrence lasts.")
    environments: tuple[Name, ...] = Field(default=(), description="Environments it applies to; empty: all.")
    releases: tuple[Name, ...] = Field(default=(), description="Releases it applies to; empty: all.")
    components: tuple[Name, ...] = Field(default=(), description="Components it applies to; empty: all.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        _zone(value)
        return value

    @field_validator("start", "end", "starting")
    @classmethod
    def _local(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            raise ValueError("write a local time without offset; the window's timezone says where")
        if value is not None and not FIRST_YEAR <= value.year <= LAST_YEAR:
            raise ValueError(f"must be a time in the years {FIRST_YEAR} to {LAST_YEAR} (got {value:%Y-%m-%d})")
        return value

    @field_validator("rrule")
    @classmethod
    def _advancing(cls, value: str | None) -> str | None:
        """A rule that moves forward at most hourly (INTERVAL=0 never moves, and finer rules with impossible
        filters search for centuries)."""
        if value is None:
            return value
        try:
            rule = rrules.rrulestr(value, dtstart=datetime(2000, 1, 1))
        except (ValueError, TypeError, OverflowError) as exc:
            raise ValueError(f"rrule {quoted(value)} cannot be read: {quoted(str(exc), 120)}") from None
        if not isinstance(rule, rrules.rrule):
            raise ValueError("rrule must be one RRULE (FREQ=...;...), not a set of rules or dates")
        if rule._interval < 1:
            raise ValueError(f"rrule {quoted(value)} has INTERVAL={rule._interval}; write 1 or more")
        if rule._freq > rrules.HOURLY:
            raise ValueError("rrule repeats more often than hourly; use FREQ=HOURLY or coarser (or cron)")
        return value

    @model_validator(mode="after")
    def _one_shape(self) -> Window:
        one_off = self.start is not None or self.end is not None
        recurring = [x for x in (self.cron, self.rrule) if x is not None]
        if one_off == bool(recurring) or len(recurring) > 1:
            raise ValueError("give either start and end (one-off), or cron or rrule with duration (recurring)")
        if one_off:
            if self.start is None or self.end is None or self.duration is not None:
                raise ValueError("a one-off window needs start and end (and no duration)")
            if to_utc(self.end, self.zone) <= to_utc(self.start, self.zone):
                raise ValueError(f"end {self.end} is not after start {self.start}")
            return self
        if self.duration is None:
            raise ValueError("a recurring window needs a duration, e.g. 4h")
        if self.cron is not None and (len(self.cron) > 200 or not croniter.is_valid(self.cron)):
            raise ValueError(f"cron {quoted(self.cron)} is not a valid cron expression (minute hour day month weekday)")
        try:
            with time_budget(RULE_BUDGET_SECONDS, "finding this window's first opening"):
                first = next(self._starts_after(datetime(2000, 1, 1)), None)
        except BudgetExceededError:
            raise ValueError(
                f"no opening found within {RULE_BUDGET_SECONDS:g}s of searching: the rule's filters (BYMONTH, "
                "BYMONTHDAY, BYDAY, BYSETPOS ...) probably never meet; simplify them"
            ) from None
        except (ValueError, OverflowError) as exc:
            raise ValueError(f"rrule {quoted(str(self.rrule))} cannot be read: {quoted(str(exc), 120)}") from None
        if first is None:
            raise ValueError("this window never opens: its cron or rrule has no occurrence")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.timezone)

    def applies_to(self, environment: str, release: str, component: str | None = None) -> bool:
        """Whether the window's scope covers this deployment."""
        return (
            (not self.environments or environment in self.environments)
            and (not self.releases or release in self.releases)
            and (component is None or not self.components or component in self.components)
        )

    def _rule(self) -> Any:
        return rrules.rrulestr(str(self.rrule), dtstart=self.starting or datetime(2000, 1, 1))

    def _starts_after(self, local: datetime) -> Iterator[datetime]:
        """Local start times strictly after ``local`` (naive wall clock), ascending."""
        if self.cron is not None:
            it = croniter(self.cron, local)
            for _ in range(SEARCH_LIMIT):
                try:
                    yield it.get_next(datetime)
                except Exception:  # noqa: BLE001 - croniter's "no next date" for crons that never match
                    return
        else:
            rule, current = self._rule(), local
            for _ in range(SEARCH_LIMIT):
                nxt = rule.after(current)
                if nxt is None:
                    return
                yield nxt
                current = nxt

    def _starts_before(self, local: datetime) -> Iterator[datetime]:
        """Local start times at or before ``local``, descending."""
        if self.cron is not None:
            it = croniter(self.cron, local + timedelta(seconds=1))
            for _ in range(SEARCH_LIMIT):
                try:
                    yield it.get_prev(datetime)
                except Exception:  # noqa: BLE001
                    return
        else:
            rule, current, inclusive = self._rule(), local, True
            for _ in range(SEARCH_LIMIT):
                prev = rule.before(current, inc=inclusive)
                if prev is None:
                    return
                yield prev
                current, inclusive = prev, False

    def occurrence_at(self, t: datetime) -> Occurrence | None:
        """The occurrence covering instant ``t`` (UTC-aware), if any."""
        if self.start is not None and self.end is not None:
            occ = Occurrence(self, to_utc(self.start, self.zone), to_utc(self.end, self.zone))
            return occ if occ.start <= t < occ.end else None
        duration = self.duration or timedelta(0)
        local = t.astimezone(self.zone).replace(tzinfo=None)
        # wall-clock starts up to a day past t can map to instants before t around DST changes
        for start_local in self._starts_before(local + timedelta(days=1)):
            start = to_utc(start_local, self.zone)
            if start <= t < start + duration:
                return Occurrence(self, start, start + duration)
            if start + duration + timedelta(days=1) <= t:
                return None
        return None

    def occurrences(self, after: datetime, until: datetime) -> Iterator[Occurrence]:
        """Occurrences that are open at some instant in [after, until), in order of start."""
        current = self.occurrence_at(after)
        if current is not None:
            yield current
        if self.start is not None and self.end is not None:
            occ = Occurrence(self, to_utc(self.start, self.zone), to_utc(self.end, self.zone))
            if after < occ.start < until:
                yield occ
            return
        local = after.astimezone(self.zone).replace(tzinfo=None) - timedelta(days=1)
        for start_local in self._starts_after(local):
            start = to_utc(start_local, self.zone)
            if start >= until:
                return
            if start > after and (current is None or start != current.start):
                yield Occurrence(self, start, start + (self.duration or timedelta(0)))


@dataclass(frozen=True)
class Occurrence:
    """One opening of a window, as UTC instants: ``start <= t < end``."""

    window: Window
    start: datetime
    end: datetime

    def describe(self) -> str:
        zone = self.window.zone
        return (
            f"{self.window.kind} {self.window.name} ({self.window.reason}) "
            f"{self.start.astimezone(zone):%Y-%m-%d %H:%M %Z} to {self.end.astimezone(zone):%Y-%m-%d %H:%M %Z}"
        )


class CalendarFile(BaseModel):
    """A shared calendar, ``include/calendars/<name>.yaml``: windows several releases use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    windows: tuple[Window, ...] = Field(min_length=1)
