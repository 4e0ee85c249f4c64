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
- Bounds, checked when a bundle is applied (`check_bounds`): the rule must occur within `HORIZON_YEARS` of
  `dtstart` (a rule that never occurs, e.g. `FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30`, would otherwise be walked to
  the year 9999 at every evaluation), and at most `MAX_OCCURRENCES` times in the range one evaluation expands
  (the SLO window plus the longest lookback), counted from the first occurrence.
- The check walks a copy of the rule moved by whole 400-year Gregorian cycles (same weekdays, same leap days,
  so the same occurrences, shifted) to just before the year 9999, where the RRULE library stops: a rule that
  never occurs costs at most ~400 years of its periods, not ~8,000.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from dateutil import rrule as rfc5545

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

Interval = tuple[datetime, datetime]
HORIZON_YEARS = 5
MAX_OCCURRENCES = 10_000
_CYCLE_YEARS = 400  # the Gregorian calendar repeats every 400 years (146,097 days, a whole number of weeks)
_LAST_PROBE_YEAR = 9_999 - HORIZON_YEARS


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

    def check_bounds(self, evaluated_seconds: int) -> None:
        """RecurrenceError unless the rule occurs within `HORIZON_YEARS` of dtstart and at most
        `MAX_OCCURRENCES` times in `evaluated_seconds` from its first occurrence."""
        shift = _CYCLE_YEARS * ((_LAST_PROBE_YEAR - self.dtstart.year) // _CYCLE_YEARS)
        start = self.dtstart.replace(year=self.dtstart.year + shift)
        probe = self.rule.replace(dtstart=start, until=None, count=None)
        first = probe.after(start, inc=True)
        horizon = timedelta(days=365 * HORIZON_YEARS + HORIZON_YEARS // 4 + 1)
        if first is None or first > start + horizon:
            raise RecurrenceError(f"{self.rrule!r} does not occur in the {HORIZON_YEARS} years after dtstart")
        # The real rule, with its COUNT and UNTIL, walked at most those few years: it has that occurrence unless
        # UNTIL ends it first.
        actual_first = first.replace(year=first.year - shift, tzinfo=ZoneInfo(self.timezone))
        if self.rule.after(actual_first, inc=True) is None:
            raise RecurrenceError(f"{self.rrule!r} ends (UNTIL) before its first occurrence")
        last = first + timedelta(seconds=evaluated_seconds)
        for count, occurrence in enumerate(probe.xafter(first, inc=True), start=1):
            if occurrence > last:
                break
            if count > MAX_OCCURRENCES:
                raise RecurrenceError(
                    f"{self.rrule!r} occurs more than {MAX_OCCURRENCES:,} times in the "
                    f"{evaluated_seconds // 86_400} days one evaluation covers (window and lookbacks); "
                    "use a coarser rule or a longer duration"
                )


def parse_rrule(text: str, dtstart: datetime, timezone: str) -> rfc5545.rrule:
    """The rule for `text` starting at the naive local `dtstart` in `timezone`; RecurrenceError if unusable."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[len("RRULE:") :]
    upper = body.upper()
    if not body or "\n" in body or ":" in body:
        raise RecurrenceError(
            f"{text!r} is not one RRULE; give only its parts, e.g. FREQ=WEEKLY;BYDAY=SU;BYHOUR=2 "
            "(dtstart is a key of its own)"
        )
    parts = {part.split("=", 1)[0].strip() for part in upper.split(";") if part.strip()}
    if "BYSECOND" in parts or "FREQ=SECONDLY" in upper.replace(" ", ""):
        raise RecurrenceError(f"{text!r}: maintenance windows are whole minutes; BYSECOND and SECONDLY are not allowed")
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
