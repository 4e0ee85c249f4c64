"""Business-time arithmetic per second: our indexed calendar against businesstimedelta, on the same inputs.

The calendar is a realistic one: Shanghai, Monday to Friday 09:00-12:00 and 13:00-18:00, China's public
holidays from the `holidays` package. Inputs are random (start, business seconds) pairs for `deadline_after`
and random (start, end) pairs for `business_seconds_between`, over 2026-2027, with targets from 15 minutes to
five working days. Every input measured on businesstimedelta and on a naive day-walking implementation is
also computed by ours; the run fails (exit 1) if any result differs.

Run: `uv run python bench/calendar/bench_calendar.py [inputs]` (default 200000; the references get a slice).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import businesstimedelta
import holidays
import pytz  # type: ignore[import-untyped]

from sla_engine.domain.bundle import parse_bundle
from slm_shared.business_time import BusinessCalendar

ZONE = "Asia/Shanghai"
BUNDLE = f"""
calendars:
  - name: cn-business
    timezone: {ZONE}
    hours: {{mon-fri: ["09:00-12:00", "13:00-18:00"]}}
    holidays: {{country: CN}}
"""
WINDOW_START = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW_SECONDS = 2 * 365 * 86_400
REFERENCE_SHARE = 80  # the references are slow: they get every 80th input
T = TypeVar("T")


def reference_rules() -> Any:
    """The same calendar for businesstimedelta: a workday, a lunch break, the same holiday dates."""
    tz = pytz.timezone(ZONE)
    days = sorted(holidays.country_holidays("CN", years=range(2025, 2031)))
    workday = businesstimedelta.WorkDayRule(
        start_time=dt_time(9), end_time=dt_time(18), working_days=[0, 1, 2, 3, 4], tz=tz
    )
    lunch = businesstimedelta.LunchTimeRule(
        start_time=dt_time(12), end_time=dt_time(13), working_days=[0, 1, 2, 3, 4], tz=tz
    )
    return businesstimedelta.Rules([workday, lunch, businesstimedelta.HolidayRule(days, tz=tz)])


class DayWalker:
    """The obvious implementation: walk local dates one by one, converting each day's intervals."""

    def __init__(self, calendar: BusinessCalendar) -> None:
        self.calendar = calendar
        self.zone = ZoneInfo(calendar.timezone)

    def _intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        midnight = datetime(day.year, day.month, day.day)  # noqa: DTZ001 - wall clock, zoned just below
        return [
            (
                (midnight + timedelta(seconds=start)).replace(tzinfo=self.zone),
                (midnight + timedelta(seconds=end)).replace(tzinfo=self.zone),
            )
            for start, end in self.calendar.hours_on(day)
        ]

    def between(self, start: datetime, end: datetime) -> int:
        total = 0
        day = start.astimezone(self.zone).date()
        while day <= end.astimezone(self.zone).date():
            for begin, finish in self._intervals(day):
                overlap = (min(finish, end) - max(begin, start)).total_seconds()
                total += max(0, int(overlap))
            day += timedelta(days=1)
        return total

    def deadline(self, start: datetime, seconds: int) -> datetime:
        left = seconds
        day = start.astimezone(self.zone).date()
        while True:
            for begin, finish in self._intervals(day):
                begin = max(begin, start)
                available = int((finish - begin).total_seconds())
                if available <= 0:
                    continue
                if available >= left:
                    return (begin + timedelta(seconds=left)).astimezone(UTC)
                left -= available
            day += timedelta(days=1)


def timed(work: Callable[[], list[T]]) -> tuple[list[T], float]:
    began = time.perf_counter()
    results = work()
    return results, time.perf_counter() - began


def report(name: str, count: int, seconds: float) -> float:
    rate = count / seconds
    print(f"  {name:<22} {rate:>14,.0f} /s   ({count:,} in {seconds:.2f} s)")
    return rate


def mismatches(ours: Sequence[object], theirs: Sequence[object]) -> int:
    return sum(1 for a, b in zip(ours, theirs, strict=True) if a != b)


def main(count: int) -> int:
    calendar = parse_bundle(BUNDLE).calendar("cn-business")
    rules = reference_rules()
    walker = DayWalker(calendar)
    rng = random.Random(20261102)
    starts = [WINDOW_START + timedelta(seconds=rng.randrange(WINDOW_SECONDS)) for _ in range(count)]
    targets = [rng.randrange(15 * 60, 5 * 8 * 3600 + 1) for _ in range(count)]
    ends = [start + timedelta(seconds=rng.randrange(1, 14 * 86_400)) for start in starts]
    sample = range(0, count, REFERENCE_SHARE)

    began = time.perf_counter()
    calendar.business_seconds_between(WINDOW_START - timedelta(days=1), WINDOW_START + timedelta(days=800))
    print(
        f"calendar cn-business ({ZONE}, Mon-Fri 09:00-12:00 13:00-18:00, CN holidays): "
        f"index for 2025-2028 built in {1000 * (time.perf_counter() - began):.1f} ms"
    )
    print(
        f"{count:,} random inputs; businesstimedelta and the day walker get every {REFERENCE_SHARE}th "
        f"({len(sample):,}), compared result by result with ours\n"
    )

    failed = False
    print("deadline_after(start, business_seconds)")
    ours, ours_time = timed(lambda: [calendar.deadline_after(s, n) for s, n in zip(starts, targets, strict=True)])
    ours_rate = report("ours (indexed)", count, ours_time)
    theirs, theirs_time = timed(
        lambda: [starts[i] + businesstimedelta.BusinessTimeDelta(rules, seconds=targets[i]) for i in sample]
    )
    theirs_rate = report("businesstimedelta", len(sample), theirs_time)
    walked, walked_time = timed(lambda: [walker.deadline(starts[i], targets[i]) for i in sample])
    report("day walker", len(sample), walked_time)
    picked = [ours[i] for i in sample]
    wrong = mismatches(picked, theirs) + mismatches(picked, walked)
    failed |= wrong > 0
    print(f"  ratio ours / businesstimedelta: {ours_rate / theirs_rate:,.0f}x; differing results: {wrong}\n")

    print("business_seconds_between(start, end)")
    ours_b, ours_time = timed(
        lambda: [calendar.business_seconds_between(s, e) for s, e in zip(starts, ends, strict=True)]
    )
    ours_rate = report("ours (indexed)", count, ours_time)

    def btd_between(i: int) -> int:
        delta = rules.difference(starts[i], ends[i])
        return int(delta.hours * 3600 + delta.seconds)

    theirs_b, theirs_time = timed(lambda: [btd_between(i) for i in sample])
    theirs_rate = report("businesstimedelta", len(sample), theirs_time)
    walked_b, walked_time = timed(lambda: [walker.between(starts[i], ends[i]) for i in sample])
    report("day walker", len(sample), walked_time)
    picked_b = [ours_b[i] for i in sample]
    wrong = mismatches(picked_b, theirs_b) + mismatches(picked_b, walked_b)
    failed |= wrong > 0
    print(f"  ratio ours / businesstimedelta: {ours_rate / theirs_rate:,.0f}x; differing results: {wrong}")

    if failed:
        print("\nFAILED: results differ from the references", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000))
