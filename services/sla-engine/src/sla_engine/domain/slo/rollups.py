"""Per-minute integer rollups: the one store every window and budgeting method is computed from.

Rules:
- A minute is identified by its UTC start (`:00` seconds). Counts are integers; a late signal rewrites only
  the minutes it touches.
- Availability: the state timeline of every component of the service, where a state holds from its `time`
  until the component's next event. At each instant the service is in its worst component state
  (down > degraded > up). Before a component's first event it contributes nothing. Planned maintenance
  (scheduled, not cancelled) is excluded from both numerator and denominator and counted as `maintenance`.
  Instants are taken to the whole second (floor).
- Ratio: a measurement window's good/total are attributed to the minute its `window_end` falls in (an
  instant exactly on a minute boundary belongs to the minute that ends there).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

State = Literal["up", "degraded", "down"]
_SEVERITY: dict[State, int] = {"up": 0, "degraded": 1, "down": 2}
_STATES: tuple[State, ...] = ("up", "degraded", "down")


@dataclass(frozen=True)
class StateChange:
    component: str
    at: datetime
    state: State


@dataclass(frozen=True)
class MaintenanceWindow:
    window_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class AvailabilityMinute:
    minute: datetime
    up: int = 0
    degraded: int = 0
    down: int = 0
    maintenance: int = 0


@dataclass(frozen=True)
class RatioMinute:
    minute: datetime
    good: int
    total: int


def minute_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def day_of(at: datetime) -> datetime:
    """The start of the UTC day of `at` (`date_trunc('day', ..., 'UTC')`: the day sums' key)."""
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _seconds(at: datetime) -> int:
    return int(at.astimezone(UTC).timestamp() // 1)


def _instant(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def availability_minutes(
    changes: Iterable[StateChange], maintenance: Sequence[MaintenanceWindow], start: datetime, end: datetime
) -> list[AvailabilityMinute]:
    """Seconds up / degraded / down / in maintenance for every minute overlapping `[start, end)` that has any."""
    first, last = _seconds(start), _seconds(end)
    by_component: dict[str, list[tuple[int, State]]] = {}
    for change in changes:
        by_component.setdefault(change.component, []).append((_seconds(change.at), change.state))
    points = {first, last}
    for timeline in by_component.values():
        timeline.sort(key=lambda item: item[0])
        points.update(at for at, _ in timeline if first < at < last)
    windows = [(_seconds(w.start), _seconds(w.end)) for w in maintenance if w.end > w.start]
    for window_start, window_end in windows:
        points.update(at for at in (window_start, window_end) if first < at < last)
    cuts = sorted(points)
    totals: dict[int, dict[str, int]] = {}
    for segment_start, segment_end in pairwise(cuts):
        state = _worst_state(by_component, segment_start)
        if state is None:
            continue
        category = "maintenance" if any(a <= segment_start < b for a, b in windows) else state
        cursor = segment_start
        while cursor < segment_end:
            minute = cursor - cursor % 60
            step = min(segment_end, minute + 60) - cursor
            bucket = totals.setdefault(minute, {})
            bucket[category] = bucket.get(category, 0) + step
            cursor += step
    return [
        AvailabilityMinute(
            minute=_instant(minute),
            up=counts.get("up", 0),
            degraded=counts.get("degraded", 0),
            down=counts.get("down", 0),
            maintenance=counts.get("maintenance", 0),
        )
        for minute, counts in sorted(totals.items())
    ]


def _worst_state(by_component: dict[str, list[tuple[int, State]]], at: int) -> State | None:
    worst: State | None = None
    for timeline in by_component.values():
        current: State | None = None
        for changed_at, state in timeline:
            if changed_at > at:
                break
            current = state
        if current is not None and (worst is None or _SEVERITY[current] > _SEVERITY[worst]):
            worst = current
    return worst


def ratio_minute(window_end: datetime) -> datetime:
    """The minute a measurement window is attributed to: the one its end falls in (a boundary: the one before)."""
    end = window_end.astimezone(UTC)
    if end.second == 0 and end.microsecond == 0:
        return end - timedelta(minutes=1)
    return minute_of(end)


def merge_ratio(rows: Iterable[RatioMinute]) -> list[RatioMinute]:
    """Sum rows of the same minute (what the SQL upsert does), in minute order."""
    merged: dict[datetime, tuple[int, int]] = {}
    for row in rows:
        good, total = merged.get(row.minute, (0, 0))
        merged[row.minute] = (good + row.good, total + row.total)
    return [RatioMinute(minute, good, total) for minute, (good, total) in sorted(merged.items())]
