"""SLIs, windows and error budgets with hand-checked numbers."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

import pytest

from sla_engine.domain.bundle import BundleError, parse_bundle
from sla_engine.domain.bundle.slos import slo_definition
from sla_engine.domain.slo.definition import AvailabilitySli
from sla_engine.domain.slo.evaluation import evaluate
from sla_engine.domain.slo.maintenance import recurring_windows
from sla_engine.domain.slo.rollups import (
    AvailabilityMinute,
    MaintenanceWindow,
    RatioMinute,
    StateChange,
    availability_minutes,
    merge_ratio,
    ratio_minute,
)
from sla_engine.domain.slo.series import MinuteSeries, availability_counts, ratio_counts
from sla_engine.domain.slo.windows import window_bounds

from .builders import slo_from_yaml, utc

EMAIL_MONTH = slo_from_yaml("""\
  - id: email-availability
    service: email
    sli: {type: availability}
    objective: 99.9
    window: {calendar: month}
""")


def test_a_month_with_a_40_minute_outage_and_a_2_hour_maintenance_window() -> None:
    # November 2026 has 30 days = 2,592,000 s; 2 h of maintenance leave 2,584,800 agreed seconds. The outage
    # inside the maintenance window (03:00-03:30) is excluded; only the 40 minutes on the 10th count.
    changes = [
        StateChange("smtp", utc("2026-11-01T00:00:00"), "up"),
        StateChange("smtp", utc("2026-11-10T10:00:00"), "down"),
        StateChange("smtp", utc("2026-11-10T10:40:00"), "up"),
        StateChange("smtp", utc("2026-11-20T03:00:00"), "down"),
        StateChange("smtp", utc("2026-11-20T03:30:00"), "up"),
    ]
    maintenance = [MaintenanceWindow("chg-77", utc("2026-11-20T02:00:00"), utc("2026-11-20T04:00:00"))]
    rows = availability_minutes(changes, maintenance, utc("2026-11-01T00:00:00"), utc("2026-12-01T00:00:00"))
    status = evaluate(
        EMAIL_MONTH,
        availability_counts(rows, Decimal(0)),
        utc("2026-11-30T23:59:59"),
        maintenance=[(window.start, window.end) for window in maintenance],
    )

    assert (status.window_start, status.window_end) == (utc("2026-11-01T00:00:00"), utc("2026-12-01T00:00:00"))
    assert status.total == 2_584_800
    assert status.good == 2_584_800 - 2_400
    assert status.sli_value == Decimal(2_582_400) / Decimal(2_584_800)
    assert status.error_budget_total == Decimal("2584.8")  # 0.1 % of the agreed time: 43.08 min
    assert status.error_budget_consumed == 2_400
    assert status.error_budget_remaining == Decimal("184.8")
    assert sum(row.maintenance for row in rows) == 7_200


def test_budget_follows_the_real_month_length_in_the_window_time_zone() -> None:
    shanghai = slo_from_yaml("""\
  - id: email-availability
    service: email
    sli: {type: availability}
    objective: 99.9
    window: {calendar: month, timezone: Asia/Shanghai}
""")
    # 43.2 min in a 30-day month, 44.64 min in a 31-day one.
    november = evaluate(shanghai, MinuteSeries.empty(), utc("2026-11-15T00:00:00"))
    october = evaluate(shanghai, MinuteSeries.empty(), utc("2026-10-15T00:00:00"))
    assert november.error_budget_total == Decimal("2592.0")
    assert october.error_budget_total == Decimal("2678.4")
    assert october.window_start == utc("2026-09-30T16:00:00")  # midnight in Shanghai
    assert october.window_end == utc("2026-10-31T16:00:00")
    assert november.sli_value is None


def test_calendar_weeks_and_quarters_are_aligned_in_their_time_zone() -> None:
    week = slo_from_yaml(
        "  - {id: w, service: s, sli: {type: availability}, objective: 99, "
        "window: {calendar: week, timezone: Europe/Berlin}}\n"
    )
    quarter = slo_from_yaml(
        "  - {id: q, service: s, sli: {type: availability}, objective: 99, "
        "window: {calendar: quarter, timezone: UTC}}\n"
    )
    # Thursday 2026-10-29; the week starts Monday 26 October, 00:00 CET (DST ended on the 25th).
    assert window_bounds(week.window, utc("2026-10-29T12:00:00")) == (
        utc("2026-10-25T23:00:00"),
        utc("2026-11-01T23:00:00"),
    )
    assert window_bounds(quarter.window, utc("2026-11-15T00:00:00")) == (
        utc("2026-10-01T00:00:00"),
        utc("2027-01-01T00:00:00"),
    )


def test_degraded_time_counts_as_downtime_by_its_weight_and_the_worst_component_wins() -> None:
    slo = slo_from_yaml(
        "  - {id: a, service: email, sli: {type: availability, degraded_weight: 0.25}, "
        "objective: 99, window: {rolling: 1d}}\n"
    )
    changes = [
        StateChange("smtp", utc("2026-11-02T00:00:00"), "up"),
        StateChange("imap", utc("2026-11-02T00:00:00"), "up"),
        StateChange("smtp", utc("2026-11-02T01:00:00"), "degraded"),  # 20 min degraded
        StateChange("imap", utc("2026-11-02T01:10:00"), "down"),  # 5 min of it also down
        StateChange("imap", utc("2026-11-02T01:15:00"), "up"),
        StateChange("smtp", utc("2026-11-02T01:20:00"), "up"),
    ]
    at = utc("2026-11-02T02:00:00")
    rows = availability_minutes(changes, [], utc("2026-11-01T00:00:00"), at)
    status = evaluate(slo, availability_counts(rows, Decimal("0.25")), at)
    assert sum(row.down for row in rows) == 300
    assert sum(row.degraded for row in rows) == 900
    assert status.total == 7_200  # no data before the first event
    assert status.error_budget_consumed == Decimal(300) + Decimal("0.25") * 900


def test_a_late_or_reordered_state_change_gives_the_in_order_result() -> None:
    start, end = utc("2026-11-02T00:00:00"), utc("2026-11-02T01:00:00")
    changes = [
        StateChange("smtp", start, "up"),
        StateChange("smtp", utc("2026-11-02T00:10:30"), "down"),
        StateChange("smtp", utc("2026-11-02T00:20:00"), "up"),
    ]
    before = availability_minutes(changes, [], start, end)
    assert sum(row.down for row in before) == 570
    late = StateChange("smtp", utc("2026-11-02T00:15:00"), "up")
    after = availability_minutes([*changes, late], [], start, end)
    assert sum(row.down for row in after) == 270
    shuffled = [*changes, late]
    random.Random(7).shuffle(shuffled)
    assert availability_minutes(shuffled, [], start, end) == after
    # Only the minutes between the late event and the next change differ.
    before_by_minute = {row.minute: row for row in before}
    after_by_minute = {row.minute: row for row in after}
    changed = {
        minute
        for minute in before_by_minute.keys() | after_by_minute.keys()
        if before_by_minute.get(minute) != after_by_minute.get(minute)
    }
    assert min(changed) == utc("2026-11-02T00:15:00")
    assert max(changed) == utc("2026-11-02T00:19:00")


def test_a_minute_split_by_a_state_change_keeps_both_parts() -> None:
    rows = availability_minutes(
        [StateChange("c", utc("2026-11-02T00:00:00"), "up"), StateChange("c", utc("2026-11-02T00:00:45"), "down")],
        [],
        utc("2026-11-02T00:00:00"),
        utc("2026-11-02T00:01:00"),
    )
    assert rows == [AvailabilityMinute(utc("2026-11-02T00:00:00"), up=45, down=15)]


def test_a_28_day_rolling_ratio_slo() -> None:
    slo = slo_from_yaml("""\
  - id: api-success
    service: api
    sli: {type: ratio, sli: requests}
    objective: 99.5
    window: {rolling: 28d}
""")
    at = utc("2026-03-01T00:00:00")
    rows = [
        RatioMinute(at - timedelta(days=27), 598_000, 600_000),
        RatioMinute(at - timedelta(minutes=30), 398_000, 400_000),
        RatioMinute(at - timedelta(days=29), 0, 1_000),
    ]  # outside the window
    status = evaluate(slo, ratio_counts(rows), at)
    assert (status.good, status.total) == (Decimal(996_000), Decimal(1_000_000))
    assert status.sli_value == Decimal("0.996")
    assert status.error_budget_total == Decimal("5000.000")
    assert status.error_budget_consumed == 4_000
    assert status.error_budget_remaining == 1_000
    rates = status.burn_rates()
    assert rates["30m"] == rates["1h"] == Decimal("1.0000")  # 0.5 % errors against a 0.5 % budget
    assert rates["5m"] is None
    # 4,000 consumed in 28 days; the last 1,000 go at the same pace in 7 more.
    assert status.exhaustion_at == at + timedelta(days=7)


def test_measurement_windows_land_in_the_minute_they_end_in_and_sum() -> None:
    assert ratio_minute(utc("2026-03-01T10:05:00")) == utc("2026-03-01T10:04:00")
    assert ratio_minute(utc("2026-03-01T10:05:30")) == utc("2026-03-01T10:05:00")
    merged = merge_ratio(
        [
            RatioMinute(utc("2026-03-01T10:05:00"), 9, 10),
            RatioMinute(utc("2026-03-01T10:04:00"), 1, 1),
            RatioMinute(utc("2026-03-01T10:05:00"), 80, 90),
        ]
    )
    assert merged == [RatioMinute(utc("2026-03-01T10:04:00"), 1, 1), RatioMinute(utc("2026-03-01T10:05:00"), 89, 100)]


def test_a_tier_edge_is_compared_exactly() -> None:
    slo = slo_from_yaml(
        "  - {id: r, service: api, sli: {type: ratio, sli: requests}, objective: 99.9, window: {rolling: 1d}}\n"
    )
    at = utc("2026-03-01T00:00:00")
    status = evaluate(slo, ratio_counts([RatioMinute(at - timedelta(minutes=1), 999, 1_000)]), at)
    assert status.sli_value == Decimal("0.999") == slo.target
    assert status.error_budget_remaining == 0


def test_timeslices_judge_each_minute_and_skip_low_traffic() -> None:
    slo = slo_from_yaml("""\
  - id: api-slices
    service: api
    sli: {type: ratio, sli: requests}
    objective: 99
    window: {rolling: 1d}
    budgeting: timeslices
    timeslice_target: 95
    timeslice_min_events: 10
""")
    at = utc("2026-03-01T00:00:00")
    rows = [
        RatioMinute(at - timedelta(minutes=3), 96, 100),  # good slice
        RatioMinute(at - timedelta(minutes=2), 90, 100),  # bad slice
        RatioMinute(at - timedelta(minutes=1), 1, 5),
    ]  # too few events: not judged
    status = evaluate(slo, ratio_counts(rows), at)
    assert (status.good, status.total) == (Decimal(1), Decimal(2))
    assert status.error_budget_total == Decimal("14.40")  # 1 % of 1,440 minutes
    assert status.error_budget_consumed == 1
    assert status.error_budget_remaining == Decimal("13.40")


def test_availability_restricted_to_agreed_service_hours() -> None:
    bundle = parse_bundle("""\
calendars:
  - name: office
    timezone: UTC
    hours: {mon-fri: ["09:00-17:00"]}
slos:
  - id: email-office-hours
    service: email
    sli: {type: availability, calendar: office}
    objective: 99.9
    window: {calendar: month}
""")
    slo = slo_definition(bundle.slos[0])
    changes = [
        StateChange("smtp", utc("2026-11-01T00:00:00"), "up"),
        StateChange("smtp", utc("2026-11-10T16:30:00"), "down"),  # Tuesday: 30 of its 90 minutes in hours
        StateChange("smtp", utc("2026-11-10T18:00:00"), "up"),
        StateChange("smtp", utc("2026-11-14T10:00:00"), "down"),  # Saturday: outside service hours
        StateChange("smtp", utc("2026-11-14T11:00:00"), "up"),
    ]
    rows = availability_minutes(changes, [], utc("2026-11-01T00:00:00"), utc("2026-12-01T00:00:00"))
    status = evaluate(slo, availability_counts(rows, Decimal(0)), utc("2026-11-30T23:59:59"), bundle.calendar("office"))
    # November 2026 has 21 weekdays: 21 x 8 h = 604,800 agreed seconds, 604.8 s of budget at 99.9 %.
    assert status.total == 604_800
    assert status.error_budget_consumed == 1_800
    assert status.error_budget_total == Decimal("604.8")
    assert status.error_budget_remaining == Decimal("-1195.2")


def test_service_hours_name_a_defined_calendar_and_apply_to_availability_only() -> None:
    with pytest.raises(BundleError) as caught:
        parse_bundle("""\
slos:
  - {id: a, service: s, sli: {type: availability, calendar: office}, objective: 99, window: {rolling: 1d}}
  - {id: r, service: s, sli: {type: ratio, sli: x, calendar: 24x7}, objective: 99, window: {rolling: 1d}}
  - {id: b, service: s, sli: {type: availability}, calendar: office, objective: 99, window: {rolling: 1d}}
""")
    assert [(issue.path, issue.line) for issue in caught.value.errors] == [
        ("slos[0].sli.calendar", 2),
        ("slos[1].sli.calendar", 3),
        ("slos[2].calendar", 4),
    ]
    assert "unknown calendar 'office'" in caught.value.errors[0].message


def test_the_earlier_slo_level_calendar_spelling_means_the_same() -> None:
    bundle = parse_bundle("""\
calendars:
  - {name: office, timezone: UTC, hours: {mon-fri: ["09:00-17:00"]}}
slos:
  - {id: a, service: s, sli: {type: availability, calendar: office}, objective: 99, window: {rolling: 1d}}
  - {id: b, service: s, sli: {type: availability}, calendar: office, objective: 99, window: {rolling: 1d}}
""")
    first, second = (slo_definition(entry) for entry in bundle.slos)
    assert first.sli == second.sli
    assert first.calendar == "office"


def test_service_hours_and_recurring_maintenance_inside_them_set_the_budget() -> None:
    bundle = parse_bundle("""\
calendars:
  - name: office
    timezone: UTC
    hours: {mon-fri: ["09:00-17:00"]}
slos:
  - id: email-office-hours
    service: email
    sli:
      type: availability
      calendar: office
      maintenance: [{rrule: "FREQ=WEEKLY;BYDAY=WE", dtstart: "2026-11-04T16:00", duration: 2h}]
    objective: 99.9
    window: {calendar: month}
""")
    slo = slo_definition(bundle.slos[0])
    assert isinstance(slo.sli, AvailabilitySli)
    start, end = utc("2026-11-01T00:00:00"), utc("2026-12-01T00:00:00")
    windows = recurring_windows(slo.sli.maintenance, start, end)
    assert len(windows) == 4  # Wednesdays 4, 11, 18 and 25 November, 16:00-18:00 UTC
    changes = [
        StateChange("smtp", start, "up"),
        StateChange("smtp", utc("2026-11-11T16:30:00"), "down"),  # inside maintenance: not counted
        StateChange("smtp", utc("2026-11-12T09:00:00"), "up"),  # 17:00-09:00 is outside hours
        StateChange("smtp", utc("2026-11-13T09:00:00"), "down"),  # Friday, 10 minutes in hours
        StateChange("smtp", utc("2026-11-13T09:10:00"), "up"),
    ]
    rows = availability_minutes(changes, [], start, end)
    status = evaluate(
        slo, availability_counts(rows, Decimal(0)), utc("2026-11-30T23:59:59"), bundle.calendar("office"), windows
    )
    # 21 weekdays x 8 h = 604,800 working seconds; each Wednesday window has 16:00-17:00 inside working time:
    # 4 x 3,600 = 14,400 s out, 590,400 agreed. 17:00-18:00 is outside the hours anyway. The last second
    # (23:59:59 on Monday 30th) is outside the hours, so every working second so far is counted.
    assert status.total == 590_400
    assert status.error_budget_consumed == 600
    assert status.error_budget_total == Decimal("590.4")
    assert status.error_budget_remaining == Decimal("-9.6")
