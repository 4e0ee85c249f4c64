"""Reporting periods in a tenant's time zone, and the split of a period into whole UTC days plus edges.

A period is a half-open interval [start, end) of instants. Monthly periods start at local midnight on the
1st, weekly ones at local midnight on Monday (ISO weeks), both in the tenant's IANA time zone (`fold=0`), so a
month in Asia/Shanghai is [last day of the previous month 16:00Z, ...). Any other interval is `custom`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

PeriodKind = Literal["monthly", "weekly"]


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    timezone: str
    kind: Literal["monthly", "weekly", "custom"]
    label: str

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant < self.end


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _month_start(year: int, month: int) -> date:
    while month < 1:
        month += 12
        year -= 1
    while month > 12:
        month -= 12
        year += 1
    return date(year, month, 1)


def period_containing(instant: datetime, timezone: str, kind: PeriodKind) -> Period:
    """The configured period that holds `instant`."""
    zone = ZoneInfo(timezone)
    local = instant.astimezone(zone).date()
    if kind == "monthly":
        first = local.replace(day=1)
        following = _month_start(first.year, first.month + 1)
        label = f"{first.year:04d}-{first.month:02d}"
    else:
        first = local - timedelta(days=local.weekday())
        following = first + timedelta(days=7)
        iso = first.isocalendar()
        label = f"{iso.year:04d}-W{iso.week:02d}"
    return Period(_local_midnight(first, zone), _local_midnight(following, zone), timezone, kind, label)


def classify(start: datetime, end: datetime, timezone: str, kind: PeriodKind) -> Period:
    """[start, end) as the configured period it is exactly, else a `custom` period."""
    candidate = period_containing(start, timezone, kind)
    if candidate.start == start and candidate.end == end:
        return candidate
    zone = ZoneInfo(timezone)
    label = f"{start.astimezone(zone).isoformat()}/{end.astimezone(zone).isoformat()}"
    return Period(start.astimezone(UTC), end.astimezone(UTC), timezone, "custom", label)


def previous_periods(period: Period, count: int) -> list[Period]:
    """The `count` periods before `period`, oldest first: calendar periods for monthly/weekly, else
    back-to-back windows of the same length."""
    found: list[Period] = []
    current = period
    for _ in range(count):
        if current.kind == "custom":
            length = current.end - current.start
            zone = ZoneInfo(current.timezone)
            start, end = current.start - length, current.start
            label = f"{start.astimezone(zone).isoformat()}/{end.astimezone(zone).isoformat()}"
            current = Period(start, end, current.timezone, "custom", label)
        else:
            current = period_containing(current.start - timedelta(seconds=1), current.timezone, current.kind)
        found.append(current)
    found.reverse()
    return found


def periods_between(first_instant: datetime, until: datetime, timezone: str, kind: PeriodKind) -> list[Period]:
    """Every configured period from the one holding `first_instant` whose end is at or before `until`."""
    found: list[Period] = []
    current = period_containing(first_instant, timezone, kind)
    while current.end <= until:
        found.append(current)
        current = period_containing(current.end, timezone, kind)
    return found


@dataclass(frozen=True)
class DaySplit:
    """[start, end) = whole UTC days [first_day, end_day) plus at most two partial edges."""

    first_day: date
    end_day: date
    edges: tuple[tuple[datetime, datetime], ...]


def split_utc_days(start: datetime, end: datetime) -> DaySplit:
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    first = start.date() if start.time() == time(0) else start.date() + timedelta(days=1)
    last = end.date()
    if first >= last:
        return DaySplit(first, first, ((start, end),) if start < end else ())
    edges: list[tuple[datetime, datetime]] = []
    first_instant = datetime.combine(first, time(0), tzinfo=UTC)
    last_instant = datetime.combine(last, time(0), tzinfo=UTC)
    if start < first_instant:
        edges.append((start, first_instant))
    if last_instant < end:
        edges.append((last_instant, end))
    return DaySplit(first, last, tuple(edges))
