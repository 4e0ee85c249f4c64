"""Evaluating an SLO at an instant: SLI value, error budget and burn rates, from per-minute rollups.

Rules:
- Every figure comes from the same per-minute counts. A minute belongs to a span `[from, to)` when its start
  lies in it; evaluation is exact (`Decimal` sums of integers, `Fraction` for comparisons).
- Availability counts are seconds: total = up + degraded + down (maintenance excluded), good = total minus
  down minus `degraded_weight` x degraded. Ratio counts are events.
- Occurrences budget: availability = (1 - objective) x the window's agreed seconds (its full length minus
  planned maintenance), so 99.9% over a 30-day month is 2592 s (43.2 min) and over a 31-day one 2678.4 s;
  ratio = (1 - objective) x the events counted so far. Consumed = total - good.
- Timeslices budget: each minute is a slice; a slice with at least `timeslice_min_events` (availability: any
  counted second) is good when good/total meets `timeslice_target`. Budget = (1 - objective) x the minutes of
  the window; consumed = bad slices.
- Burn rate over a lookback = (bad / total over the lookback) / (1 - objective); none without data.
- Service hours (`calendar`): minutes outside them are ignored and the agreed time is the window's working
  time (timeslices: its working minutes).
- Projected exhaustion: at the window's average consumption rate so far; none when nothing is consumed,
  the budget is already spent, or (calendar windows) the projection falls after the window's end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING

from sla_engine.domain.slo.definition import AvailabilitySli, RollingWindow, SloDefinition
from sla_engine.domain.slo.maintenance import Interval, merge
from sla_engine.domain.slo.series import Head, MinuteSeries, epoch_ceil, epoch_floor, instant
from sla_engine.domain.slo.windows import window_bounds

if TYPE_CHECKING:
    from slm_shared.business_time import BusinessCalendar

LOOKBACKS: Mapping[str, int] = {
    "5m": 300,
    "30m": 1_800,
    "1h": 3_600,
    "2h": 7_200,
    "6h": 21_600,
    "1d": 86_400,
    "3d": 259_200,
}
_LONGEST = max(LOOKBACKS.values())
_RATE_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class Span:
    """Bad and total over a lookback; the exact burn rate is `bad / total / (1 - objective)`."""

    bad: Decimal
    total: Decimal

    def burn_rate(self, target: Decimal) -> Fraction | None:
        if self.total == 0:
            return None
        return Fraction(self.bad) / Fraction(self.total) / (1 - Fraction(target))


@dataclass(frozen=True)
class SloStatus:
    slo_id: str
    service: str
    at: datetime
    window_start: datetime
    window_end: datetime
    objective: Decimal
    good: Decimal
    total: Decimal
    sli_value: Decimal | None
    error_budget_total: Decimal
    error_budget_consumed: Decimal
    error_budget_remaining: Decimal
    spans: Mapping[str, Span]
    exhaustion_at: datetime | None
    last_data_minute: datetime | None

    def burn_rates(self) -> dict[str, Decimal | None]:
        """Burn rates for the status event, rounded to 4 places (alerts compare the exact values)."""
        target = self.objective / 100
        rates: dict[str, Decimal | None] = {}
        for name, span in self.spans.items():
            rate = span.burn_rate(target)
            rates[name] = (
                None if rate is None else (Decimal(rate.numerator) / Decimal(rate.denominator)).quantize(_RATE_PLACES)
            )
        return rates


def evaluate(
    slo: SloDefinition,
    series: MinuteSeries,
    at: datetime,
    hours: BusinessCalendar | None = None,
    maintenance: Iterable[Interval] = (),
) -> SloStatus:
    """The SLO's status at `at` from its per-minute counts (minutes outside the spans are ignored).

    With `hours` (the SLO's agreed service hours), only minutes inside them count, and the window's agreed
    time is its working time. `maintenance` (availability SLIs) is every planned maintenance window known for
    the window: scheduled events and recurring occurrences. A minute wholly inside one is excluded, and the
    windows' seconds (inside `hours`) are taken off the agreed time."""
    start, end = window_bounds(slo.window, at)
    if hours is not None and hours.is_continuous:
        hours = None
    windows = merge(maintenance) if isinstance(slo.sli, AvailabilitySli) else []
    if hours is not None:
        calendar = hours
        series = series.keeping(lambda minute: _in_hours(calendar, minute))
    if series.head is not None:
        _check_head(slo, series.head, start, end, at, hours, windows)
    series = series.without_covered(windows)
    until = series.index(at)
    ranges = {name: (series.index(at - timedelta(seconds=seconds)), until) for name, seconds in LOOKBACKS.items()}
    window = (series.index(start), min(series.index(end), until))
    last_data = series.last_data_before(until)
    if slo.sliced:
        good, total, spans = _sliced(slo, series, window, ranges, start)
    else:
        good, total, spans = _occurrences(series, window, ranges)
    consumed = total - good
    agreed = _agreed_seconds(start, end, hours, windows)
    target = slo.target
    if slo.sliced:
        budget = (1 - target) * Decimal(agreed) / Decimal(slo.timeslice_seconds)
    elif isinstance(slo.sli, AvailabilitySli):
        budget = (1 - target) * Decimal(agreed)
    else:
        budget = (1 - target) * total
    remaining = budget - consumed
    return SloStatus(
        slo_id=slo.id,
        service=slo.service,
        at=at,
        window_start=start,
        window_end=end,
        objective=slo.objective,
        good=good,
        total=total,
        sli_value=good / total if total else None,
        error_budget_total=budget,
        error_budget_consumed=consumed,
        error_budget_remaining=remaining,
        spans=spans,
        exhaustion_at=_exhaustion(slo, start, end, at, consumed, remaining),
        last_data_minute=last_data,
    )


Positions = tuple[int, int]


def _check_head(
    slo: SloDefinition,
    head: Head,
    start: datetime,
    end: datetime,
    at: datetime,
    hours: BusinessCalendar | None,
    windows: Sequence[Interval],
) -> None:
    """A head is summed as a whole: it must lie in the window before every lookback, with nothing to exclude."""
    if slo.sliced or hours is not None:
        raise ValueError("minutes summed ahead (a head) serve occurrences budgeting without service hours only")
    if head.start != epoch_ceil(start) or head.end > epoch_ceil(min(end, at - timedelta(seconds=_LONGEST))):
        raise ValueError("a head must start with the window and end before the longest lookback")
    if any(begin < instant(head.end) and finish > instant(head.start) for begin, finish in windows):
        raise ValueError("a maintenance window overlaps the minutes summed ahead")


def _occurrences(
    series: MinuteSeries, window: Positions, ranges: Mapping[str, Positions]
) -> tuple[Decimal, Decimal, dict[str, Span]]:
    sums = series.sums(*window)
    if series.head is not None:
        sums = series.head.sums + sums
    spans = {}
    for name, positions in ranges.items():
        span = series.sums(*positions)
        spans[name] = Span(series.bad_of(span), Decimal(span.total))
    return series.good_of(sums), Decimal(sums.total), spans


def _sliced(
    slo: SloDefinition, series: MinuteSeries, window: Positions, ranges: Mapping[str, Positions], start: datetime
) -> tuple[Decimal, Decimal, dict[str, Span]]:
    """Slices of `timeslice_seconds` on a grid from the window start (calendar windows) or the Unix epoch
    (rolling ones); each span judges the slices formed by its own minutes."""
    length = slo.timeslice_seconds
    anchor = 0 if isinstance(slo.window, RollingWindow) else epoch_floor(start)
    judge = _SliceJudge(slo, series.weight)
    good, total = judge.judge(_slices(series, window, anchor, length))
    spans = {}
    for name, positions in ranges.items():
        slice_good, slice_total = judge.judge(_slices(series, positions, anchor, length))
        spans[name] = Span(slice_total - slice_good, slice_total)
    return good, total, spans


def _slices(series: MinuteSeries, positions: Positions, anchor: int, length: int) -> list[list[int]]:
    """[total, bad, weighted] per slice over the minutes at `positions`, in minute order."""
    slices: list[list[int]] = []
    key = None
    weighted = series.weighted
    for position in range(*positions):
        epoch = series.minutes[position]
        slice_key = epoch - (epoch - anchor) % length
        if slice_key != key:
            slices.append([0, 0, 0])
            key = slice_key
        current = slices[-1]
        current[0] += series.total[position]
        current[1] += series.bad[position]
        if weighted:
            current[2] += weighted[position]
    return slices


class _SliceJudge:
    """Good and total slices: a slice with too few events is not judged; a timeslice is good (1) when its ratio
    meets the slice target (compared in integers: good x q >= p x total), a ratio timeslice scores its ratio."""

    def __init__(self, slo: SloDefinition, weight: Decimal) -> None:
        self._minimum = 1 if isinstance(slo.sli, AvailabilitySli) else slo.timeslice_min_events
        self._ratio_scored = slo.budgeting == "ratio_timeslices"
        self._target = Fraction(slo.timeslice_ratio)
        self._weight = weight
        self._weight_fraction = Fraction(weight)

    def judge(self, slices: Iterable[list[int]]) -> tuple[Decimal, Decimal]:
        good = Decimal(0)
        total = 0
        weight, scale = self._weight_fraction.numerator, self._weight_fraction.denominator
        target, target_scale = self._target.numerator, self._target.denominator
        for slice_total, bad, weighted in slices:
            if slice_total <= 0 or slice_total < self._minimum:
                continue
            total += 1
            if self._ratio_scored:
                good += (Decimal(slice_total - bad) - self._weight * weighted) / slice_total
            elif ((slice_total - bad) * scale - weight * weighted) * target_scale >= target * slice_total * scale:
                good += 1
        return good, Decimal(total)


def _agreed_seconds(start: datetime, end: datetime, hours: BusinessCalendar | None, windows: Sequence[Interval]) -> int:
    """The window's length (or working time) minus the planned maintenance in it (inside working time)."""

    def seconds(begin: datetime, finish: datetime) -> int:
        if hours is None:
            return int((finish - begin).total_seconds())
        return hours.business_seconds_between(begin, finish)

    agreed = seconds(start, end)
    for begin, finish in windows:
        if finish > start and begin < end:
            agreed -= seconds(max(begin, start), min(finish, end))
    return agreed


def _in_hours(hours: BusinessCalendar, minute: int) -> bool:
    return hours.business_seconds_between_epochs(minute, minute + 60) == 60


def _exhaustion(
    slo: SloDefinition, start: datetime, end: datetime, at: datetime, consumed: Decimal, remaining: Decimal
) -> datetime | None:
    elapsed = Decimal(int((min(at, end) - start).total_seconds()))
    if consumed <= 0 or remaining <= 0 or elapsed <= 0:
        return None
    seconds = remaining * elapsed / consumed
    projected = at + timedelta(seconds=int(seconds))
    if not isinstance(slo.window, RollingWindow) and projected >= end:
        return None
    return projected
