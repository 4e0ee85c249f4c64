"""A series of per-minute counts in columns, ordered by minute: what the evaluator sums, in C, by index range.

Rules:
- Minutes are UTC epoch seconds of whole-second minute starts, ascending. Every column is an integer: `total`,
  `bad` (wholly bad units: down seconds, or total - good events) and `weighted` (units that are bad by
  `weight`: degraded seconds). A minute's good = total - bad - weight x weighted, exactly as `Decimal`.
- A window or lookback `[from, to)` is one index range found by bisection, so summing it is a builtin `sum`
  of integer slices (no per-minute Python work); the sums equal minute-by-minute `Decimal` sums exactly
  (integers, and one `Decimal` product per range).
- Excluding minutes (outside service hours, inside planned maintenance) gives a new, shorter series.
- A `head` is the window's older minutes summed by the database (`[head.start, head.end)`, before every
  column minute and every lookback): an occurrences SLO with nothing to exclude there needs no minute of it,
  so a 90-day window reads 3 days of columns and three sums.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import compress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sla_engine.domain.slo.rollups import AvailabilityMinute, RatioMinute

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def epoch_floor(at: datetime) -> int:
    """Whole epoch seconds at or before `at` (exact: no float)."""
    return (at - EPOCH) // _SECOND


def epoch_ceil(at: datetime) -> int:
    """Whole epoch seconds at or after `at`: for an integer minute m, `m >= at` exactly when `m >= epoch_ceil(at)`."""
    return -((EPOCH - at) // _SECOND)


def instant(epoch: int) -> datetime:
    return EPOCH + timedelta(seconds=epoch)


@dataclass(frozen=True)
class RangeSums:
    """Sums over one index range: bad units are `bad + weight x weighted`."""

    total: int
    bad: int
    weighted: int

    def __add__(self, other: RangeSums) -> RangeSums:
        return RangeSums(self.total + other.total, self.bad + other.bad, self.weighted + other.weighted)


@dataclass(frozen=True)
class Head:
    """Sums of the minutes `[start, end)` (epoch seconds), and the last of them with data."""

    start: int
    end: int
    sums: RangeSums
    last_data: datetime | None


@dataclass(frozen=True)
class MinuteSeries:
    minutes: Sequence[int]
    total: Sequence[int]
    bad: Sequence[int]
    weighted: Sequence[int] = ()
    weight: Decimal = field(default=Decimal(0))
    head: Head | None = None

    @classmethod
    def from_columns(
        cls,
        minutes: list[int],
        total: list[int],
        bad: list[int],
        weighted: list[int] | None = None,
        weight: Decimal = Decimal(0),
        head: Head | None = None,
    ) -> MinuteSeries:
        """Columns as read; put in minute order if they are not (a linear check when they are)."""
        columns = [minutes, total, bad, *([weighted] if weighted else [])]
        if minutes != sorted(minutes):  # linear, in C, on ordered input
            columns = [list(column) for column in zip(*sorted(zip(*columns, strict=True)), strict=True)]
        return cls(columns[0], columns[1], columns[2], columns[3] if weighted else (), weight, head)

    @classmethod
    def empty(cls) -> MinuteSeries:
        return cls((), (), ())

    def index(self, at: datetime) -> int:
        """The position of the first minute at or after `at`."""
        return bisect_left(self.minutes, epoch_ceil(at))

    def sums(self, start: int, end: int) -> RangeSums:
        """Totals of the minutes at positions `[start, end)`."""
        if end <= start:
            return RangeSums(0, 0, 0)

        def part(column: Sequence[int]) -> Sequence[int]:
            return column if start == 0 and end == len(column) else column[start:end]  # no copy of a whole column

        weighted = sum(part(self.weighted)) if self.weighted else 0
        return RangeSums(sum(part(self.total)), sum(part(self.bad)), weighted)

    def good_of(self, sums: RangeSums) -> Decimal:
        return Decimal(sums.total - sums.bad) - self.weight * sums.weighted

    def bad_of(self, sums: RangeSums) -> Decimal:
        return Decimal(sums.bad) + self.weight * sums.weighted

    def last_data_before(self, end: int) -> datetime | None:
        """The latest minute before position `end` with any data (else the head's last)."""
        for position in range(end - 1, -1, -1):
            if self.total[position] > 0:
                return instant(self.minutes[position])
        return None if self.head is None else self.head.last_data

    def keeping(self, keep: Callable[[int], bool]) -> MinuteSeries:
        """Only the minutes `keep` accepts (by epoch second)."""
        mask = [keep(minute) for minute in self.minutes]
        return self._masked(mask)

    def without_covered(self, windows: Sequence[tuple[datetime, datetime]]) -> MinuteSeries:
        """Without the minutes wholly inside one of `windows` (`[begin, finish)`, merged and ordered)."""
        if not windows or not self.minutes:
            return self
        mask = [True] * len(self.minutes)
        for begin, finish in windows:
            # A minute m is covered when begin <= m and m + 60 <= finish.
            first = bisect_left(self.minutes, epoch_ceil(begin))
            last = bisect_right(self.minutes, epoch_floor(finish) - 60)
            mask[first:last] = [False] * max(0, last - first)
        return self._masked(mask)

    def _masked(self, mask: list[bool]) -> MinuteSeries:
        if all(mask):
            return self
        return MinuteSeries(
            list(compress(self.minutes, mask)),
            list(compress(self.total, mask)),
            list(compress(self.bad, mask)),
            list(compress(self.weighted, mask)) if self.weighted else (),
            self.weight,
            self.head,
        )


def availability_counts(rows: Iterable[AvailabilityMinute], degraded_weight: Decimal) -> MinuteSeries:
    """Seconds: total = up + degraded + down (maintenance excluded); down is bad, degraded bad by its weight."""
    ordered = sorted(rows, key=lambda row: row.minute)
    return MinuteSeries(
        [epoch_floor(row.minute) for row in ordered],
        [row.up + row.degraded + row.down for row in ordered],
        [row.down for row in ordered],
        [row.degraded for row in ordered],
        degraded_weight,
    )


def ratio_counts(rows: Iterable[RatioMinute]) -> MinuteSeries:
    """Events: bad = total - good."""
    ordered = sorted(rows, key=lambda row: row.minute)
    return MinuteSeries(
        [epoch_floor(row.minute) for row in ordered],
        [row.total for row in ordered],
        [row.total - row.good for row in ordered],
    )
