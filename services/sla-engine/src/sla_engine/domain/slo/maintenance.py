"""Recurring planned maintenance: an RRULE in the bundle, expanded to UTC windows over the range evaluated.

Rules:
- `rrule` is one RFC 5545 recurrence rule (`FREQ=WEEKLY;BYDAY=SU;BYHOUR=2`, COUNT and UNTIL allowed; UNTIL
  in UTC, ending in `Z`, as RFC 5545 asks when the start has a time zone). `dtstart` is the first
  occurrence's local wall time in `timezone`, without an offset.
- Occurrences are generated in local wall time and converted with the zone (`fold=0`, as calendars do,
  DESIGN.md 5): 02:00 in Europe/Berlin is 01:00 UTC in winter and 00:00 UTC in summer. `duration` is elapsed
  time, so a 2h window lasts two real hours even across a daylight-saving change.
- Windows are whole minutes (`dtstart` without seconds, no BYSECOND, `duration` a multiple of 1m), so every
  rollup minute is either inside a window or outside it; that is what lets the evaluator exclude them from
  the stored per-minute rollups exactly (docs/slo.md).
- Only the occurrences overlapping the requested range are expanded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

from dateutil import rrule as rfc5545

Interval = tuple[datetime, datetime]


class RecurrenceError(ValueError):
    """A recurrence that cannot be used, with a reason fit for a bundle error."""


@dataclass(frozen=True)
class RecurringMaintenance:
    rrule: str
    dtstart: datetime
    duration_seconds: int
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        self.rule  # noqa: B018 - validate eagerly: a bad rule fails where it is defined

    @cached_property
    def rule(self) -> rfc5545.rrule:
        return parse_rrule(self.rrule, self.dtstart, self.timezone)

    def occurrences(self, start: datetime, end: datetime) -> list[Interval]:
        """The windows `[begin, finish)` in UTC that overlap `[start, end)`, in order."""
        duration = timedelta(seconds=self.duration_seconds)
        found = []
        for occurrence in self.rule.between(start - duration, end, inc=True):
            begin = occurrence.astimezone(UTC)
            finish = begin + duration
            if finish > start and begin < end:
                found.append((begin, finish))
        return found


def parse_rrule(text: str, dtstart: datetime, timezone: str) -> rfc5545.rrule:
    """The rule for `text` starting at the naive local `dtstart` in `timezone`; RecurrenceError if unusable."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[len("RRULE:"):]
    upper = body.upper()
    if not body or "\n" in body or ":" in body:
        raise RecurrenceError(f"{text!r} is not one RRULE; give only its parts, e.g. FREQ=WEEKLY;BYDAY=SU;BYHOUR=2 "
                              "(dtstart is a key of its own)")
    parts = {part.split("=", 1)[0].strip() for part in upper.split(";") if part.strip()}
    if "BYSECOND" in parts or "FREQ=SECONDLY" in upper.replace(" ", ""):
        raise RecurrenceError(f"{text!r}: maintenance windows are whole minutes; BYSECOND and SECONDLY are not "
                              "allowed")
    if dtstart.tzinfo is not None:
        raise RecurrenceError("dtstart must be local wall time without an offset; the zone is `timezone`")
    if dtstart.second or dtstart.microsecond:
        raise RecurrenceError("dtstart must be a whole minute")
    try:
        rule = rfc5545.rrulestr(body, dtstart=dtstart.replace(tzinfo=ZoneInfo(timezone)))
    except (ValueError, TypeError, KeyError, IndexError) as error:
        raise RecurrenceError(f"{text!r} is not a valid RRULE: {error}") from error
    if not isinstance(rule, rfc5545.rrule):
        raise RecurrenceError(f"{text!r} is not one RRULE")
    return rule


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Overlapping or touching intervals joined, in order; empty ones dropped."""
    merged: list[Interval] = []
    for begin, finish in sorted(interval for interval in intervals if interval[1] > interval[0]):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], finish))
        else:
            merged.append((begin, finish))
    return merged


def recurring_windows(schedules: Sequence[RecurringMaintenance], start: datetime, end: datetime) -> list[Interval]:
    """Every occurrence of `schedules` overlapping `[start, end)`, merged."""
    return merge(window for schedule in schedules for window in schedule.occurrences(start, end))
