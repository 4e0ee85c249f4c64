"""The columnar evaluator (index ranges, builtin sums, integer slice judging) equals a straightforward one.

The reference below is the minute-by-minute `Decimal` loop the evaluator replaced: every minute is filtered,
compared with each span's bounds and added. On random data (gaps, any order, degraded weights, maintenance
windows off the minute grid, instants with seconds, service hours, every budgeting method and window kind)
the window's good and total, every lookback's bad and total and the last data minute must be equal."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest

from sla_engine.domain.bundle import parse_bundle
from sla_engine.domain.bundle.slos import slo_definition
from sla_engine.domain.slo.definition import AvailabilitySli, RollingWindow, SloDefinition
from sla_engine.domain.slo.evaluation import LOOKBACKS, Span, evaluate
from sla_engine.domain.slo.maintenance import Interval, merge
from sla_engine.domain.slo.rollups import AvailabilityMinute, RatioMinute
from sla_engine.domain.slo.series import (
    Head,
    MinuteSeries,
    RangeSums,
    availability_counts,
    epoch_ceil,
    ratio_counts,
)
from sla_engine.domain.slo.windows import window_bounds
from slm_shared.business_time import BusinessCalendar

from .builders import utc

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Minute:
    minute: datetime
    good: Decimal
    total: Decimal


def reference(
    slo: SloDefinition, minutes: list[Minute], at: datetime, hours: BusinessCalendar | None, maintenance: list[Interval]
) -> tuple[Decimal, Decimal, dict[str, Span], datetime | None]:
    start, end = window_bounds(slo.window, at)
    windows = merge(maintenance) if isinstance(slo.sli, AvailabilitySli) else []
    kept = [
        m
        for m in minutes
        if (hours is None or hours.is_continuous or hours.business_seconds_between(m.minute, m.minute + MINUTE) == 60)
        and not any(begin <= m.minute and m.minute + MINUTE <= finish for begin, finish in windows)
    ]
    last = max((m.minute for m in kept if m.total > 0 and m.minute < at), default=None)
    since = {name: at - timedelta(seconds=seconds) for name, seconds in LOOKBACKS.items()}
    in_window = [m for m in kept if start <= m.minute < end and m.minute < at]
    in_span = {name: [m for m in kept if bound <= m.minute < at] for name, bound in since.items()}
    if not slo.sliced:
        spans = {
            name: Span(sum((m.total - m.good for m in found), Decimal(0)), sum((m.total for m in found), Decimal(0)))
            for name, found in in_span.items()
        }
        return (
            sum((m.good for m in in_window), Decimal(0)),
            sum((m.total for m in in_window), Decimal(0)),
            spans,
            last,
        )
    anchor = 0 if isinstance(slo.window, RollingWindow) else int(start.timestamp())

    def judge(found: list[Minute]) -> tuple[Decimal, Decimal]:
        slices: dict[int, list[Decimal]] = {}
        for m in sorted(found, key=lambda item: item.minute):
            epoch = int(m.minute.timestamp())
            key = epoch - (epoch - anchor) % slo.timeslice_seconds
            bucket = slices.setdefault(key, [Decimal(0), Decimal(0)])
            bucket[0] += m.good
            bucket[1] += m.total
        minimum = 1 if isinstance(slo.sli, AvailabilitySli) else slo.timeslice_min_events
        good = total = Decimal(0)
        for slice_good, slice_total in slices.values():
            if slice_total <= 0 or slice_total < minimum:
                continue
            total += 1
            if slo.budgeting == "ratio_timeslices":
                good += slice_good / slice_total
            elif Fraction(slice_good) / Fraction(slice_total) >= Fraction(slo.timeslice_ratio):
                good += 1
        return good, total

    good, total = judge(in_window)
    spans = {}
    for name, found in in_span.items():
        slice_good, slice_total = judge(found)
        spans[name] = Span(slice_total - slice_good, slice_total)
    return good, total, spans, last


HOURS = parse_bundle("""\
calendars:
  - name: office
    timezone: Europe/Berlin
    hours: {mon-fri: ["08:00-12:30", "13:15-17:00"]}
""").calendar("office")

WINDOWS = ["{rolling: 1d}", "{rolling: 7d}", "{calendar: week, timezone: Asia/Kolkata}", "{calendar: month}"]
BUDGETING = [
    "",
    "budgeting: timeslices, timeslice_target: 95, ",
    "budgeting: ratio_timeslices, timeslice: 5m, ",
    "budgeting: timeslices, timeslice_target: 99.5, timeslice: 15m, timeslice_min_events: 3, ",
]


@pytest.mark.parametrize("seed", range(24))
def test_the_columnar_evaluator_equals_the_minute_by_minute_one(seed: int) -> None:
    generator = random.Random(seed)
    availability = seed % 2 == 0
    weight = generator.choice([Decimal(0), Decimal("0.25"), Decimal("0.333"), Decimal(1)])
    sli = f"{{type: availability, degraded_weight: {weight}}}" if availability else "{type: ratio, sli: requests}"
    budgeting = generator.choice(BUDGETING)
    if availability and "min_events" in budgeting:
        budgeting = BUDGETING[1]
    slo = slo_definition(
        parse_bundle(
            f"slos:\n  - {{id: s, service: s, sli: {sli}, objective: 99.5, {budgeting}"
            f"window: {generator.choice(WINDOWS)}}}\n"
        ).slos[0]
    )
    at = utc("2026-03-09T10:00:00") + timedelta(
        seconds=generator.randrange(86_400 * 8), microseconds=generator.choice([0, 1, 999_999])
    )
    first = at - timedelta(days=9)
    minutes = [
        first.replace(second=0, microsecond=0) + index * MINUTE
        for index in range(9 * 1_440 + 30)
        if generator.random() < 0.8
    ]
    generator.shuffle(minutes)
    hours = HOURS if availability and generator.random() < 0.4 else None
    maintenance = []
    for _ in range(generator.randrange(4)):
        begin = at - timedelta(seconds=generator.randrange(8 * 86_400))
        maintenance.append((begin, begin + timedelta(seconds=generator.randrange(60, 30_000))))
    if availability:
        rows = []
        for minute in minutes:
            up, degraded = generator.randrange(61), generator.randrange(20)
            rows.append(
                AvailabilityMinute(minute, up, degraded, generator.randrange(max(1, 61 - up)), generator.randrange(5))
            )
        series = availability_counts(rows, weight)
        plain = [
            Minute(
                row.minute,
                Decimal(row.up + row.degraded + row.down) - row.down - weight * row.degraded,
                Decimal(row.up + row.degraded + row.down),
            )
            for row in rows
        ]
    else:
        ratios = [
            RatioMinute(minute, good, good + generator.choice([0, 0, 1, 7]))
            for minute in minutes
            for good in [generator.randrange(6)]
        ]
        series = ratio_counts(ratios)
        plain = [Minute(row.minute, Decimal(row.good), Decimal(row.total)) for row in ratios]
    status = evaluate(slo, series, at, hours, maintenance)
    good, total, spans, last = reference(slo, plain, at, hours, maintenance)
    assert (status.good, status.total, dict(status.spans), status.last_data_minute) == (good, total, spans, last)
    assert total > 0


@pytest.mark.parametrize("seed", range(12))
def test_a_window_partly_summed_ahead_equals_the_whole_series(seed: int) -> None:
    """The older part of the window as three sums (what the database returns) gives the same status."""
    generator = random.Random(seed)
    weight = generator.choice([Decimal(0), Decimal("0.25")])
    window = generator.choice(["{rolling: 7d}", "{rolling: 28d}", "{calendar: month}"])
    slo = slo_definition(
        parse_bundle(
            f"slos:\n  - {{id: s, service: s, sli: {{type: availability, degraded_weight: {weight}}}, "
            f"objective: 99.5, window: {window}}}\n"
        ).slos[0]
    )
    at = utc("2026-03-20T10:00:00") + timedelta(seconds=generator.randrange(86_400 * 8), microseconds=7)
    start, _ = window_bounds(slo.window, at)
    split = at - timedelta(seconds=max(LOOKBACKS.values()))
    rows = [
        AvailabilityMinute(
            start.replace(second=0, microsecond=0) + index * MINUTE, up, degraded, generator.randrange(3), 0
        )
        for index in range(int((at - start) / MINUTE) + 2)
        if generator.random() < 0.7
        for up, degraded in [(generator.randrange(61), generator.randrange(30))]
    ]
    # Outages only before the split now and then, so the last data may be in the head.
    if seed % 3 == 0:
        rows = [row for row in rows if row.minute < split]
    older = [row for row in rows if start <= row.minute < split]
    head = Head(
        epoch_ceil(start),
        epoch_ceil(split),
        RangeSums(
            sum(row.up + row.degraded + row.down for row in older),
            sum(row.down for row in older),
            sum(row.degraded for row in older),
        ),
        max((row.minute for row in older if row.up + row.degraded + row.down > 0), default=None),
    )
    newer = availability_counts([row for row in rows if row.minute >= split], weight)
    maintenance = [(split + timedelta(minutes=90), split + timedelta(minutes=200))]
    whole = evaluate(slo, availability_counts(rows, weight), at, maintenance=maintenance)
    assert evaluate(slo, replace(newer, head=head), at, maintenance=maintenance) == whole
    assert whole.total > 0


def test_a_head_with_something_to_exclude_is_refused() -> None:
    slo = slo_definition(
        parse_bundle(
            "slos:\n  - {id: s, service: s, sli: {type: availability}, objective: 99.5, window: {rolling: 7d}}\n"
        ).slos[0]
    )
    at = utc("2026-03-20T10:00:00")
    head = Head(epoch_ceil(at - timedelta(days=7)), epoch_ceil(at - timedelta(days=3)), RangeSums(60, 0, 0), None)
    series = replace(availability_counts([], Decimal(0)), head=head)
    with pytest.raises(ValueError, match="overlaps"):
        evaluate(slo, series, at, maintenance=[(at - timedelta(days=5), at - timedelta(days=4))])
    with pytest.raises(ValueError, match="service hours"):
        evaluate(slo, series, at, HOURS)


def test_columns_read_out_of_order_are_put_in_minute_order() -> None:
    series = MinuteSeries.from_columns([120, 0, 60], [3, 1, 2], [0, 1, 0], [5, 0, 0], Decimal("0.5"))
    assert (series.minutes, series.total, series.bad, series.weighted) == (
        [0, 60, 120],
        [1, 2, 3],
        [1, 0, 0],
        [0, 0, 5],
    )
