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

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from sla_engine.domain.calendar import BusinessCalendar
from sla_engine.domain.slo.definition import AvailabilitySli, RollingWindow, SloDefinition
from sla_engine.domain.slo.maintenance import Interval, merge
from sla_engine.domain.slo.rollups import AvailabilityMinute, RatioMinute
from sla_engine.domain.slo.windows import window_bounds

LOOKBACKS: Mapping[str, int] = {"5m": 300, "30m": 1_800, "1h": 3_600, "2h": 7_200, "6h": 21_600,
                                "1d": 86_400, "3d": 259_200}
_RATE_PLACES = Decimal("0.0001")
_MINUTE = timedelta(minutes=1)
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class MinuteCounts:
    """One minute as the evaluator sees it: good and total in the SLI's unit, plus excluded seconds."""

    minute: datetime
    good: Decimal
    total: Decimal
    excluded: int = 0


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
            rates[name] = None if rate is None else \
                (Decimal(rate.numerator) / Decimal(rate.denominator)).quantize(_RATE_PLACES)
        return rates


def availability_counts(rows: Iterable[AvailabilityMinute], degraded_weight: Decimal) -> list[MinuteCounts]:
    counts = []
    for row in rows:
        total = Decimal(row.up + row.degraded + row.down)
        good = total - row.down - degraded_weight * row.degraded
        counts.append(MinuteCounts(row.minute, good, total, row.maintenance))
    return counts


def ratio_counts(rows: Iterable[RatioMinute]) -> list[MinuteCounts]:
    return [MinuteCounts(row.minute, Decimal(row.good), Decimal(row.total)) for row in rows]


def evaluate(slo: SloDefinition, counts: Sequence[MinuteCounts], at: datetime,
             hours: BusinessCalendar | None = None, maintenance: Iterable[Interval] = ()) -> SloStatus:
    """The SLO's status at `at` from its per-minute counts (any order; minutes outside the spans are ignored).

    With `hours` (the SLO's agreed service hours), only minutes inside them count, and the window's agreed
    time is its working time. `maintenance` (availability SLIs) is every planned maintenance window known for
    the window: scheduled events and recurring occurrences. A minute wholly inside one is excluded, and the
    windows' seconds (inside `hours`) are taken off the agreed time."""
    start, end = window_bounds(slo.window, at)
    if hours is not None and hours.is_continuous:
        hours = None
    windows = merge(maintenance) if isinstance(slo.sli, AvailabilitySli) else []
    if hours is not None:
        counts = [minute for minute in counts if _in_hours(hours, minute.minute)]
    if windows:
        counts = [minute for minute in counts if not _covered(windows, minute.minute)]
    lookback_from = {name: at - timedelta(seconds=seconds) for name, seconds in LOOKBACKS.items()}
    last_data: datetime | None = None
    for minute in counts:
        if minute.total > 0 and minute.minute < at and (last_data is None or minute.minute > last_data):
            last_data = minute.minute
    if slo.sliced:
        good, total, spans = _sliced(slo, counts, at, start, end, lookback_from)
    else:
        good, total, spans = _occurrences(counts, at, start, end, lookback_from)
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
        slo_id=slo.id, service=slo.service, at=at, window_start=start, window_end=end, objective=slo.objective,
        good=good, total=total, sli_value=good / total if total else None,
        error_budget_total=budget, error_budget_consumed=consumed, error_budget_remaining=remaining,
        spans=spans, exhaustion_at=_exhaustion(slo, start, end, at, consumed, remaining), last_data_minute=last_data)


def _occurrences(counts: Sequence[MinuteCounts], at: datetime, start: datetime, end: datetime,
                 lookback_from: Mapping[str, datetime]) -> tuple[Decimal, Decimal, dict[str, Span]]:
    earliest_lookback = min(lookback_from.values())
    span_bad = dict.fromkeys(LOOKBACKS, Decimal(0))
    span_total = dict.fromkeys(LOOKBACKS, Decimal(0))
    good = total = Decimal(0)
    for minute in counts:
        if minute.minute >= at:
            continue
        if start <= minute.minute < end:
            good += minute.good
            total += minute.total
        if minute.minute < earliest_lookback:
            continue
        for name, since in lookback_from.items():
            if minute.minute >= since:
                span_bad[name] += minute.total - minute.good
                span_total[name] += minute.total
    return good, total, {name: Span(span_bad[name], span_total[name]) for name in LOOKBACKS}


def _sliced(slo: SloDefinition, counts: Sequence[MinuteCounts], at: datetime, start: datetime, end: datetime,
            lookback_from: Mapping[str, datetime]) -> tuple[Decimal, Decimal, dict[str, Span]]:
    """Slices of `timeslice_seconds` on a grid from the window start (calendar windows) or the Unix epoch
    (rolling ones); each span judges the slices formed by its own minutes."""
    length = slo.timeslice_seconds
    anchor = 0 if isinstance(slo.window, RollingWindow) else int(start.timestamp())
    window: dict[int, list[Decimal]] = {}
    spans: dict[str, dict[int, list[Decimal]]] = {name: {} for name in LOOKBACKS}
    earliest_lookback = min(lookback_from.values())
    for minute in counts:
        if minute.minute >= at:
            continue
        epoch = int(minute.minute.timestamp())
        key = epoch - (epoch - anchor) % length
        if start <= minute.minute < end:
            _add(window, key, minute)
        if minute.minute < earliest_lookback:
            continue
        for name, since in lookback_from.items():
            if minute.minute >= since:
                _add(spans[name], key, minute)
    good, total = _judge(slo, window)
    judged = {name: _judge(slo, slices) for name, slices in spans.items()}
    return good, total, {name: Span(slice_total - slice_good, slice_total)
                         for name, (slice_good, slice_total) in judged.items()}


def _add(slices: dict[int, list[Decimal]], key: int, minute: MinuteCounts) -> None:
    found = slices.get(key)
    if found is None:
        slices[key] = [minute.good, minute.total]
    else:
        found[0] += minute.good
        found[1] += minute.total


def _judge(slo: SloDefinition, slices: dict[int, list[Decimal]]) -> tuple[Decimal, Decimal]:
    """Good and total slices: a slice with too few events is not judged; a timeslice is good (1) when its ratio
    meets the slice target, a ratio timeslice scores its ratio."""
    minimum = 1 if isinstance(slo.sli, AvailabilitySli) else slo.timeslice_min_events
    slice_ratio = Fraction(slo.timeslice_ratio)
    good = total = Decimal(0)
    for slice_good, slice_total in slices.values():
        if slice_total <= 0 or slice_total < minimum:
            continue
        total += 1
        if slo.budgeting == "ratio_timeslices":
            good += slice_good / slice_total
        elif Fraction(slice_good) / Fraction(slice_total) >= slice_ratio:
            good += 1
    return good, total


def _agreed_seconds(start: datetime, end: datetime, hours: BusinessCalendar | None,
                    windows: Sequence[Interval]) -> int:
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


def _covered(windows: Sequence[Interval], minute: datetime) -> bool:
    """Whether the whole minute lies inside one of the merged, ordered windows."""
    position = bisect_right(windows, (minute, _FAR_FUTURE)) - 1
    return position >= 0 and windows[position][1] >= minute + _MINUTE


def _in_hours(hours: BusinessCalendar, minute: datetime) -> bool:
    start = int(minute.timestamp())
    return hours.business_seconds_between_epochs(start, start + 60) == 60


def _exhaustion(slo: SloDefinition, start: datetime, end: datetime, at: datetime, consumed: Decimal,
                remaining: Decimal) -> datetime | None:
    elapsed = Decimal(int((min(at, end) - start).total_seconds()))
    if consumed <= 0 or remaining <= 0 or elapsed <= 0:
        return None
    seconds = remaining * elapsed / consumed
    projected = at + timedelta(seconds=int(seconds))
    if not isinstance(slo.window, RollingWindow) and projected >= end:
        return None
    return projected
