"""Business time: which instants count, and the arithmetic on them (DESIGN.md section 5).

Pure (no I/O, time passed in) and in the kit because more than one service counts working time: the
sla-engine runs its clocks on it, reporting brings running clocks forward to a report's instant with it.

Rules:
- The working time of a calendar is, for every local date, the wall-clock intervals of that date's weekday
  (or of the weekday an `extra_workdays` entry names), unless the date is a holiday (the `holidays` package's
  country set or `extra_holidays`). A make-up day in `extra_workdays` is worked even on a country holiday.
- Wall-clock times become instants through the calendar's IANA zone with `fold=0`, so an interval on a
  daylight-saving day is as long as it really is. Working time is the union of the converted intervals:
  where `fold=0` makes two of them overlap (a wall time inside a spring-forward gap), it counts once.
- Instants are floored to whole seconds; every result is an integer number of seconds.
- Elapsed time and deadlines both come from one indexed interval list (UTC epoch seconds, cumulative working
  seconds, binary search), built per local year on first use and kept. Local years 1900..2200 are supported
  (outside them a ValueError): an unbounded range would let one absurd instant build centuries of index.
- A calendar whose every weekday is worked 00:00-24:00 with no holidays (the built-in `24x7`) counts true
  elapsed seconds.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import holidays as holiday_tables

if TYPE_CHECKING:
    from collections.abc import Mapping

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_NAMES: tuple[str, ...] = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DAY_SECONDS = 86_400
MIN_YEAR, MAX_YEAR = 1900, 2200  # about 110,000 days at most: a few MB of index, built in about a second

DayHours = tuple[tuple[int, int], ...]
"""One weekday's working intervals: (start, end) seconds after local midnight, [start, end), end <= 86400."""

FULL_DAY: DayHours = ((0, DAY_SECONDS),)
ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class CalendarConfig:
    """A validated business calendar definition (the `calendars[]` entry of a bundle).

    `hours` has seven entries, Monday first. `extra_workdays` maps a date to the weekday (0 = Monday) whose
    hours it is worked with; such a date is never also in `extra_holidays`.
    """

    name: str
    timezone: str
    hours: tuple[DayHours, ...]
    holidays_country: str | None = None
    holidays_subdivision: str | None = None
    extra_holidays: frozenset[date] = frozenset()
    extra_workdays: tuple[tuple[date, int], ...] = ()

    def __post_init__(self) -> None:
        if len(self.hours) != 7:
            raise ValueError("hours needs one entry per weekday, Monday first")
        overlap = self.extra_holidays & {day for day, _ in self.extra_workdays}
        if overlap:
            raise ValueError(f"{min(overlap)} is both an extra holiday and an extra workday")

    @property
    def is_continuous(self) -> bool:
        """Every second counts: all weekdays 00:00-24:00 and no holiday at all."""
        return all(day == FULL_DAY for day in self.hours) and self.holidays_country is None and not self.extra_holidays


@dataclass(frozen=True)
class NonWorkingSpan:
    """A stretch of time that does not count, with the reason a service-desk manager would give."""

    start: datetime
    end: datetime
    reason: str
    seconds: int


@dataclass(frozen=True)
class _Index:
    """Working intervals of local years [first_year, last_year] as UTC epoch seconds.

    `cum[i]` = working seconds from an arbitrary origin up to `starts[i]`; `cum[-1]` up to the last end.
    Intervals are sorted, disjoint and lie in [lo, hi).
    """

    first_year: int
    last_year: int
    lo: int
    hi: int
    starts: list[int] = field(repr=False)
    ends: list[int] = field(repr=False)
    cum: list[int] = field(repr=False)


def to_epoch(instant: datetime) -> int:
    """Whole UTC epoch seconds of an aware datetime, flooring any fraction."""
    if instant.tzinfo is None:
        raise ValueError(f"naive datetime {instant.isoformat()}: business time needs an aware datetime")
    return math.floor(instant.timestamp())


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@cache
def _zone(key: str) -> ZoneInfo:
    return ZoneInfo(key)


class BusinessCalendar:
    """An immutable business calendar; its interval index is a cache filled on demand."""

    __slots__ = ("_config", "_continuous", "_holiday_names", "_index", "_overrides", "_zone")

    def __init__(self, config: CalendarConfig) -> None:
        self._config = config
        self._zone = _zone(config.timezone)
        self._continuous = config.is_continuous
        self._overrides: Mapping[date, int] = dict(config.extra_workdays)
        self._holiday_names: dict[int, Mapping[date, str]] = {}
        self._index: _Index | None = None

    @property
    def name(self) -> str:
        return self._config.name

    @property
    def timezone(self) -> str:
        """The IANA zone key, e.g. `Asia/Shanghai`."""
        return self._config.timezone

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    @property
    def config(self) -> CalendarConfig:
        return self._config

    @property
    def is_continuous(self) -> bool:
        return self._continuous

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BusinessCalendar) and other._config == self._config

    def __hash__(self) -> int:
        return hash(self._config)

    def __repr__(self) -> str:
        return f"BusinessCalendar({self.name!r}, {self.timezone!r})"

    # -- public arithmetic -------------------------------------------------------------------------------

    def business_seconds_between(self, start: datetime, end: datetime) -> int:
        """Working seconds in [start, end); 0 when end <= start."""
        return self.business_seconds_between_epochs(to_epoch(start), to_epoch(end))

    def deadline_after(self, start: datetime, business_seconds: int) -> datetime:
        """The earliest instant t >= start with business_seconds_between(start, t) == business_seconds (UTC).

        A deadline that uses up a working interval exactly is that interval's end, not the next one's start.
        """
        if business_seconds <= 0:
            if business_seconds < 0:
                raise ValueError("business_seconds must not be negative")
            return start.astimezone(UTC)
        return from_epoch(self.deadline_after_epoch(to_epoch(start), business_seconds))

    def business_seconds_between_epochs(self, start: int, end: int) -> int:
        """`business_seconds_between` on whole UTC epoch seconds."""
        if end <= start:
            return 0
        if self._continuous:
            return end - start
        index = self._index
        if index is None or start < index.lo or end > index.hi:
            index = self._covering(start, end)
        starts, ends, cum = index.starts, index.ends, index.cum
        i = bisect_right(starts, end) - 1
        worked_end = cum[0] if i < 0 else (cum[i] + end - starts[i] if end < ends[i] else cum[i + 1])
        i = bisect_right(starts, start) - 1
        worked_start = cum[0] if i < 0 else (cum[i] + start - starts[i] if start < ends[i] else cum[i + 1])
        return worked_end - worked_start

    def deadline_after_epoch(self, start: int, business_seconds: int) -> int:
        """`deadline_after` on whole UTC epoch seconds."""
        if business_seconds <= 0:
            if business_seconds < 0:
                raise ValueError("business_seconds must not be negative")
            return start
        if self._continuous:
            return start + business_seconds
        index = self._index
        if index is None or start < index.lo or start > index.hi:
            index = self._covering(start, start)
        starts, ends, cum = index.starts, index.ends, index.cum
        i = bisect_right(starts, start) - 1
        worked = cum[0] if i < 0 else (cum[i] + start - starts[i] if start < ends[i] else cum[i + 1])
        target = worked + business_seconds
        while target > cum[-1]:
            # Grow ahead geometrically: a long target on a sparse calendar needs few rebuilds.
            if index.last_year >= MAX_YEAR:
                raise ValueError(f"the deadline lies beyond the supported years {MIN_YEAR}..{MAX_YEAR}")
            span = max(1, index.last_year - index.first_year)
            index = self._extend_to(index.first_year, min(MAX_YEAR, index.last_year + span))
            cum = index.cum
            target = self._worked_at(index, start) + business_seconds
        # The first interval whose cumulative end reaches the target holds the deadline.
        k = bisect_left(cum, target, 1) - 1
        return index.starts[k] + target - cum[k]

    def non_working_spans(self, start: datetime, end: datetime) -> list[NonWorkingSpan]:
        """The non-working stretches inside [start, end), each with its reason.

        Reasons: `holiday: <name>` (country or extra holiday), `weekend` (a Saturday or Sunday without hours),
        `no working hours on <weekday>`, `outside working hours` (before, between or after a day's intervals).
        A gap is split at local midnights to name each day's reason, then equal neighbours are merged again.
        """
        a, b = to_epoch(start), to_epoch(end)
        if b <= a or self._continuous:
            return []
        index = self._covering(a, b) if self._index is None or a < self._index.lo or b > self._index.hi else self._index
        gaps: list[tuple[int, int]] = []
        cursor = a
        for k in range(bisect_right(index.ends, a), len(index.starts)):
            s, e = index.starts[k], index.ends[k]
            if s >= b:
                break
            if s > cursor:
                gaps.append((cursor, s))
            cursor = max(cursor, e)
        if cursor < b:
            gaps.append((cursor, b))
        spans: list[NonWorkingSpan] = []
        for gap_start, gap_end in gaps:
            for piece_start, piece_end, reason in self._split_by_day(gap_start, gap_end):
                last = spans[-1] if spans else None
                if last is not None and last.reason == reason and to_epoch(last.end) == piece_start:
                    spans[-1] = NonWorkingSpan(
                        last.start, from_epoch(piece_end), reason, last.seconds + piece_end - piece_start
                    )
                else:
                    spans.append(
                        NonWorkingSpan(from_epoch(piece_start), from_epoch(piece_end), reason, piece_end - piece_start)
                    )
        return spans

    # -- what a local date is ----------------------------------------------------------------------------

    def holiday_name(self, day: date) -> str | None:
        """The holiday that makes `day` a day off, or None (a make-up workday is never a day off)."""
        if day in self._overrides:
            return None
        name = self._country_holidays(day.year).get(day)
        if name is not None:
            return name
        if day in self._config.extra_holidays:
            return "company holiday (extra_holidays)"
        return None

    def hours_on(self, day: date) -> DayHours:
        """The wall-clock working intervals of a local date."""
        weekday = self._overrides.get(day)
        if weekday is not None:
            return self._config.hours[weekday]
        if day in self._config.extra_holidays or day in self._country_holidays(day.year):
            return ()
        return self._config.hours[day.weekday()]

    def _day_off_reason(self, day: date) -> str:
        holiday = self.holiday_name(day)
        if holiday is not None:
            return f"holiday: {holiday}"
        if self.hours_on(day):
            return "outside working hours"
        weekday = day.weekday()
        return "weekend" if weekday >= 5 else f"no working hours on {WEEKDAY_NAMES[weekday]}"

    def _country_holidays(self, year: int) -> Mapping[date, str]:
        names = self._holiday_names.get(year)
        if names is None:
            country = self._config.holidays_country
            if country is None:
                names = {}
            else:
                table = holiday_tables.country_holidays(country, subdiv=self._config.holidays_subdivision, years=year)
                names = {day: str(name) for day, name in table.items() if day.year == year}
            self._holiday_names[year] = names
        return names

    def _split_by_day(self, start: int, end: int) -> list[tuple[int, int, str]]:
        pieces: list[tuple[int, int, str]] = []
        day = datetime.fromtimestamp(start, self._zone).date()
        cursor = start
        while cursor < end:
            next_midnight = self._wall_epoch(day + ONE_DAY, 0)
            piece_end = min(end, next_midnight)
            if piece_end > cursor:
                pieces.append((cursor, piece_end, self._day_off_reason(day)))
            cursor = max(cursor, piece_end)
            day += ONE_DAY
        return pieces

    # -- the index ---------------------------------------------------------------------------------------

    def _wall_epoch(self, day: date, second_of_day: int) -> int:
        if second_of_day >= DAY_SECONDS:
            day, second_of_day = day + ONE_DAY, second_of_day - DAY_SECONDS
        hour, rest = divmod(second_of_day, 3600)
        minute, second = divmod(rest, 60)
        wall = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=self._zone)  # fold=0
        return math.floor(wall.timestamp())

    def _year_of(self, epoch: int) -> int:
        try:
            return datetime.fromtimestamp(epoch, self._zone).year
        except (OverflowError, OSError, ValueError) as error:
            raise ValueError(f"instant {epoch} is outside the supported years {MIN_YEAR}..{MAX_YEAR}") from error

    @staticmethod
    def _worked_at(index: _Index, instant: int) -> int:
        i = bisect_right(index.starts, instant) - 1
        if i < 0:
            return index.cum[0]
        return index.cum[i] + instant - index.starts[i] if instant < index.ends[i] else index.cum[i + 1]

    def _covering(self, start: int, end: int) -> _Index:
        first, last = self._year_of(start), self._year_of(end)
        if self._index is not None:
            first, last = min(first, self._index.first_year), max(last, self._index.last_year)
        index = self._extend_to(first, last)
        # A zone whose New Year midnight falls in a DST gap starts the local year a little late: pad by a year.
        while start < index.lo:
            index = self._extend_to(index.first_year - 1, index.last_year)
        while end > index.hi:
            index = self._extend_to(index.first_year, index.last_year + 1)
        return index

    def _extend_to(self, first_year: int, last_year: int) -> _Index:
        """Make the index cover [first_year, last_year], building only the missing years."""
        if first_year < MIN_YEAR or last_year > MAX_YEAR:
            raise ValueError(f"business time is supported for years {MIN_YEAR}..{MAX_YEAR}")
        index = self._index
        if index is None:
            index = self._build(first_year, last_year)
        else:
            if first_year < index.first_year:
                index = _join(self._build(first_year, index.first_year - 1), index)
            if last_year > index.last_year:
                index = _join(index, self._build(index.last_year + 1, last_year))
        self._index = index  # one reference swap: concurrent readers see the old or the new index whole
        return index

    def _build(self, first_year: int, last_year: int) -> _Index:
        intervals: list[tuple[int, int]] = []
        day, stop = date(first_year, 1, 1), date(last_year + 1, 1, 1)
        while day < stop:
            for wall_start, wall_end in self.hours_on(day):
                intervals.append((self._wall_epoch(day, wall_start), self._wall_epoch(day, wall_end)))
            day += ONE_DAY
        starts, ends = _union(intervals)
        return _Index(
            first_year,
            last_year,
            self._wall_epoch(date(first_year, 1, 1), 0),
            self._wall_epoch(stop, 0),
            starts,
            ends,
            _cumulative(starts, ends),
        )


def _union(intervals: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Sorted, disjoint intervals covering the same instants; empty ones dropped, touching ones joined.

    Sorting matters only on daylight-saving days: `fold=0` maps a wall time inside a spring-forward gap to
    the offset before the change, which can put it after the start of the day's next interval.
    """
    intervals.sort()
    starts: list[int] = []
    ends: list[int] = []
    for begin, finish in intervals:
        if finish <= begin:
            continue
        if ends and begin <= ends[-1]:
            ends[-1] = max(ends[-1], finish)
        else:
            starts.append(begin)
            ends.append(finish)
    return starts, ends


def _join(earlier: _Index, later: _Index) -> _Index:
    """Concatenate adjacent year ranges and recount the cumulative working seconds from zero."""
    starts, ends = earlier.starts + later.starts, earlier.ends + later.ends
    boundary = len(earlier.starts)
    if 0 < boundary < len(starts) and starts[boundary] <= ends[boundary - 1]:
        starts, ends = _union(list(zip(starts, ends, strict=True)))  # touching or overlapping at New Year
    return _Index(earlier.first_year, later.last_year, earlier.lo, later.hi, starts, ends, _cumulative(starts, ends))


def _cumulative(starts: list[int], ends: list[int]) -> list[int]:
    cum = [0]
    total = 0
    for begin, finish in zip(starts, ends, strict=True):
        total += finish - begin
        cum.append(total)
    return cum


TWENTY_FOUR_SEVEN = BusinessCalendar(CalendarConfig(name="24x7", timezone="UTC", hours=(FULL_DAY,) * 7))
"""The built-in calendar: every second counts."""
