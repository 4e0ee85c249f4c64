"""Recurring maintenance windows (RRULE in the bundle): expansion, exclusion from SLI and budget, validation."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import pytest

from sla_engine.domain.bundle import BundleError, dump_bundle, parse_bundle
from sla_engine.domain.bundle.slos import slo_definition
from sla_engine.domain.slo.definition import AvailabilitySli, SloDefinition
from sla_engine.domain.slo.evaluation import evaluate
from sla_engine.domain.slo.maintenance import RecurrenceError, RecurringMaintenance, merge, recurring_windows
from sla_engine.domain.slo.rollups import StateChange, availability_minutes
from sla_engine.domain.slo.series import availability_counts

from .builders import utc


def local(text: str) -> datetime:
    """A wall-clock time without a zone, as `dtstart` is written."""
    return datetime.fromisoformat(text)


SUNDAY_NIGHTS = RecurringMaintenance("FREQ=WEEKLY;BYDAY=SU;BYHOUR=2", local("2026-01-04T02:00"), 7_200, "Europe/Berlin")

WEEKLY_BUNDLE = """\
slos:
  - id: email-availability
    service: email
    sli:
      type: availability
      maintenance:
        - {rrule: "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2", dtstart: "2026-01-04T02:00", duration: 2h,
           timezone: Europe/Berlin}
    objective: 99.9
    window: {rolling: 7d}
"""


def weekly_slo(bundle: str = WEEKLY_BUNDLE) -> SloDefinition:
    return slo_definition(parse_bundle(bundle).slos[0])


def test_occurrences_follow_local_wall_time_across_daylight_saving() -> None:
    # 02:00 in Berlin: CET (+1) on 22 March -> 01:00Z; on 29 March 02:00 does not exist (clocks jump to 03:00)
    # and fold=0 reads it with the offset before the jump (+1) -> 01:00Z; CEST (+2) on 5 April -> 00:00Z.
    # Each window lasts two real hours.
    assert SUNDAY_NIGHTS.occurrences(utc("2026-03-21T00:00:00"), utc("2026-04-06T00:00:00")) == [
        (utc("2026-03-22T01:00:00"), utc("2026-03-22T03:00:00")),
        (utc("2026-03-29T01:00:00"), utc("2026-03-29T03:00:00")),
        (utc("2026-04-05T00:00:00"), utc("2026-04-05T02:00:00")),
    ]
    # 25 October: 02:00 happens twice; fold=0 is the first, still CEST (+2) -> 00:00Z.
    assert SUNDAY_NIGHTS.occurrences(utc("2026-10-24T00:00:00"), utc("2026-10-26T00:00:00")) == [
        (utc("2026-10-25T00:00:00"), utc("2026-10-25T02:00:00"))
    ]


def test_only_occurrences_overlapping_the_range_are_returned() -> None:
    # The 11 January window is 01:00Z-03:00Z: a range starting at 02:00Z still overlaps it, one at 03:00Z not.
    assert SUNDAY_NIGHTS.occurrences(utc("2026-01-11T02:00:00"), utc("2026-01-12T00:00:00")) == [
        (utc("2026-01-11T01:00:00"), utc("2026-01-11T03:00:00"))
    ]
    assert SUNDAY_NIGHTS.occurrences(utc("2026-01-11T03:00:00"), utc("2026-01-18T01:00:00")) == []


def test_count_and_until_end_the_series() -> None:
    daily = "FREQ=DAILY;COUNT=2"
    two = RecurringMaintenance(daily, local("2026-01-04T02:00"), 3_600, "Europe/Berlin")
    # Two occurrences only: 4 and 5 January at 01:00Z, however wide the range.
    assert [start for start, _ in two.occurrences(utc("2026-01-01T00:00:00"), utc("2027-01-01T00:00:00"))] == [
        utc("2026-01-04T01:00:00"),
        utc("2026-01-05T01:00:00"),
    ]
    until = RecurringMaintenance("FREQ=DAILY;UNTIL=20260110T000000Z", local("2026-01-04T02:00"), 3_600, "Europe/Berlin")
    # 01:00Z on 4..9 January; 10 January 01:00Z is after UNTIL (00:00Z): six windows.
    assert len(until.occurrences(utc("2026-01-01T00:00:00"), utc("2027-01-01T00:00:00"))) == 6


def test_overlapping_windows_are_merged() -> None:
    hourly = RecurringMaintenance("FREQ=HOURLY;INTERVAL=1", local("2026-01-01T00:00"), 5_400)
    # 90-minute windows every hour overlap: 00:00-01:30, 01:00-02:30 -> one 00:00-02:30 over [00:00, 02:00).
    assert recurring_windows([hourly], utc("2026-01-01T00:00:00"), utc("2026-01-01T02:00:00")) == [
        (utc("2026-01-01T00:00:00"), utc("2026-01-01T02:30:00"))
    ]
    assert merge(
        [
            (utc("2026-01-01T05:00:00"), utc("2026-01-01T06:00:00")),
            (utc("2026-01-01T01:00:00"), utc("2026-01-01T02:00:00")),
        ]
    ) == [
        (utc("2026-01-01T01:00:00"), utc("2026-01-01T02:00:00")),
        (utc("2026-01-01T05:00:00"), utc("2026-01-01T06:00:00")),
    ]


def week_of_rollups() -> list[StateChange]:
    return [
        StateChange("smtp", utc("2026-01-01T00:00:00"), "up"),
        StateChange("smtp", utc("2026-01-07T10:00:00"), "down"),  # 10 minutes, a Wednesday
        StateChange("smtp", utc("2026-01-07T10:10:00"), "up"),
        StateChange("smtp", utc("2026-01-11T02:00:00"), "down"),  # 30 minutes inside Sunday's 01:00Z-03:00Z
        StateChange("smtp", utc("2026-01-11T02:30:00"), "up"),
    ]


def test_a_recurring_window_is_excluded_from_numerator_denominator_and_budget() -> None:
    at = utc("2026-01-12T00:00:00")
    slo = weekly_slo()
    assert isinstance(slo.sli, AvailabilitySli)
    rows = availability_minutes(week_of_rollups(), [], utc("2026-01-01T00:00:00"), at)
    windows = recurring_windows(slo.sli.maintenance, utc("2026-01-05T00:00:00"), at)
    assert windows == [(utc("2026-01-11T01:00:00"), utc("2026-01-11T03:00:00"))]
    status = evaluate(slo, availability_counts(rows, Decimal(0)), at, maintenance=windows)
    # Window 5-12 January = 604,800 s, all with data; the 2 h window (7,200 s) is out of both: 597,600 s agreed.
    # Downtime counted: the Wednesday's 600 s; the 1,800 s inside the window cost nothing.
    assert status.total == 597_600
    assert status.good == 597_000
    assert status.error_budget_total == Decimal("597.6")  # 0.1 % of 597,600 s
    assert status.error_budget_consumed == 600
    assert status.error_budget_remaining == Decimal("-2.4")


def test_adding_a_recurring_window_corrects_the_same_stored_minutes() -> None:
    # The exclusion is derived when evaluating, so a bundle change applies to minutes already rolled up.
    at = utc("2026-01-12T00:00:00")
    rows = availability_minutes(week_of_rollups(), [], utc("2026-01-01T00:00:00"), at)
    without = weekly_slo(
        WEEKLY_BUNDLE.replace(
            """\
      maintenance:
        - {rrule: "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2", dtstart: "2026-01-04T02:00", duration: 2h,
           timezone: Europe/Berlin}
""",
            "",
        )
    )
    before = evaluate(without, availability_counts(rows, Decimal(0)), at)
    # Without it: 604,800 s agreed, 600 + 1,800 s down, 604.8 s of budget.
    assert (before.total, before.error_budget_consumed, before.error_budget_total) == (
        Decimal(604_800),
        Decimal(2_400),
        Decimal("604.8"),
    )
    slo = weekly_slo()
    assert isinstance(slo.sli, AvailabilitySli)
    after = evaluate(
        slo,
        availability_counts(rows, Decimal(0)),
        at,
        maintenance=recurring_windows(slo.sli.maintenance, utc("2026-01-05T00:00:00"), at),
    )
    assert (after.total, after.error_budget_consumed, after.error_budget_total) == (
        Decimal(597_600),
        Decimal(600),
        Decimal("597.6"),
    )


def test_a_recurring_window_and_a_scheduled_one_overlapping_are_excluded_once() -> None:
    at = utc("2026-01-12T00:00:00")
    slo = weekly_slo()
    assert isinstance(slo.sli, AvailabilitySli)
    scheduled = (utc("2026-01-11T02:00:00"), utc("2026-01-11T04:00:00"))  # an itsm.maintenance.v1 window
    windows = [*recurring_windows(slo.sli.maintenance, utc("2026-01-05T00:00:00"), at), scheduled]
    rows = availability_minutes(week_of_rollups(), [], utc("2026-01-01T00:00:00"), at)
    status = evaluate(slo, availability_counts(rows, Decimal(0)), at, maintenance=windows)
    # 01:00Z-03:00Z joined with 02:00Z-04:00Z is 01:00Z-04:00Z: 10,800 s, so 604,800 - 10,800 = 594,000 agreed.
    assert status.total == 594_000
    assert status.error_budget_total == Decimal("594.0")


def test_the_design_shape_parses_into_the_definition() -> None:
    slo = weekly_slo()
    assert isinstance(slo.sli, AvailabilitySli)
    assert slo.sli.maintenance == (SUNDAY_NIGHTS,)
    # A YAML timestamp (with seconds) is read as the same local wall time.
    again = weekly_slo(WEEKLY_BUNDLE.replace('dtstart: "2026-01-04T02:00"', "dtstart: 2026-01-04 02:00:00"))
    assert again.sli == slo.sli


@pytest.mark.parametrize(
    ("old", "new", "path", "words"),
    [
        (
            '"FREQ=WEEKLY;BYDAY=SU;BYHOUR=2"',
            '"FREQ=FORTNIGHTLY"',
            "slos[0].sli.maintenance[0].rrule",
            "not a valid RRULE",
        ),
        (
            '"FREQ=WEEKLY;BYDAY=SU;BYHOUR=2"',
            '"FREQ=WEEKLY;BYSECOND=30"',
            "slos[0].sli.maintenance[0].rrule",
            "whole minutes",
        ),
        (
            '"FREQ=WEEKLY;BYDAY=SU;BYHOUR=2"',
            '"FREQ=DAILY;UNTIL=20260110T000000"',
            "slos[0].sli.maintenance[0].rrule",
            "UNTIL",
        ),
        ("duration: 2h,", "", "slos[0].sli.maintenance[0].duration", "is required"),
        ("duration: 2h,", "duration: 90s,", "slos[0].sli.maintenance[0].duration", "not whole minutes"),
        ('"2026-01-04T02:00"', '"2026-01-04T02:00+01:00"', "slos[0].sli.maintenance[0].dtstart", "without an offset"),
        ('"2026-01-04T02:00"', '"sunday"', "slos[0].sli.maintenance[0].dtstart", "local date and time"),
        ("timezone: Europe/Berlin", "timezone: Europe/Atlantis", "slos[0].sli.maintenance[0].timezone", "IANA"),
    ],
)
def test_a_bad_recurring_window_is_reported_with_its_path_and_line(old: str, new: str, path: str, words: str) -> None:
    assert WEEKLY_BUNDLE.count(old) == 1
    with pytest.raises(BundleError) as caught:
        parse_bundle(WEEKLY_BUNDLE.replace(old, new))
    assert [issue.path for issue in caught.value.errors] == [path], caught.value.errors
    assert caught.value.errors[0].line in (7, 8)  # the window's own lines
    assert words in caught.value.errors[0].message


def test_maintenance_belongs_to_availability_slis_only() -> None:
    with pytest.raises(BundleError) as caught:
        parse_bundle("""\
slos:
  - id: api
    service: api
    sli: {type: ratio, sli: requests, maintenance: []}
    objective: 99
    window: {rolling: 1d}
""")
    assert [(issue.path, issue.line) for issue in caught.value.errors] == [("slos[0].sli.maintenance", 4)]


def test_a_dumped_bundle_keeps_the_recurring_windows() -> None:
    bundle = parse_bundle(WEEKLY_BUNDLE.replace('dtstart: "2026-01-04T02:00"', "dtstart: 2026-01-04 02:00:00"))
    again = parse_bundle(json.dumps(dump_bundle(bundle)), content_type="json")
    assert slo_definition(again.slos[0]) == slo_definition(bundle.slos[0]) == weekly_slo()


@pytest.mark.parametrize(
    ("rule", "dtstart"),
    [
        ("FREQ=WEEKLY;BYDAY=SU;BYHOUR=2", "2026-01-04T02:00"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "2026-01-04T02:00"),  # first in 2028, within the 5 years
        ("FREQ=YEARLY", "2028-02-29T03:00"),  # a leap day start: every fourth year (the probe keeps leap days)
        ("FREQ=MONTHLY;BYDAY=-1SU;COUNT=1", "2026-01-04T02:00"),
        ("FREQ=WEEKLY;BYDAY=SU;UNTIL=20260201T000000Z", "2026-01-04T02:00"),
        ("FREQ=WEEKLY;BYDAY=SU", "9998-01-04T02:00"),  # near the end of the calendar
        ("FREQ=MINUTELY;INTERVAL=15;BYHOUR=2", "1970-01-04T02:00"),  # 4 a day: 136 in 34 days
    ],
)
def test_bounded_rules_pass_the_apply_check(rule: str, dtstart: str) -> None:
    RecurringMaintenance(rule, local(dtstart), 600, "Europe/Berlin").check_bounds(34 * 86_400)


def test_the_occurrence_cap_counts_the_range_one_evaluation_expands() -> None:
    every_five_minutes = RecurringMaintenance("FREQ=MINUTELY;INTERVAL=5", local("2026-01-04T02:00"), 300)
    every_five_minutes.check_bounds(34 * 86_400)  # 9,792 occurrences
    with pytest.raises(RecurrenceError, match="more than 10,000 times"):
        every_five_minutes.check_bounds(35 * 86_400)  # 10,080
