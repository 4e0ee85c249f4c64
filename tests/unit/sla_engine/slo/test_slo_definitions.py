"""SLO entries in the bundle: validated with path and line, objectives kept exactly as written."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from sla_engine.domain.bundle import BundleError, dump_bundle, parse_bundle
from sla_engine.domain.bundle.slos import slo_definition
from sla_engine.domain.slo.definition import (
    AvailabilitySli,
    CalendarWindow,
    RatioSli,
    RollingWindow,
    ThresholdSli,
    TicketSlaSli,
)

BUNDLE = """\
slos:
  - id: email-availability
    service: email
    sli: {type: availability, degraded_weight: 0.5}
    objective: 99.9
    window: {calendar: month, timezone: Asia/Shanghai}
  - id: api-success
    service: api
    sli: {type: ratio, sli: requests}
    objective: 99.5
    window: {rolling: 28d}
    budgeting: timeslices
    timeslice_target: 95
    timeslice_min_events: 10
    no_data_after: 30m
"""


def test_the_design_example_slos_become_exact_definitions() -> None:
    bundle = parse_bundle(BUNDLE)
    email, api = (slo_definition(config) for config in bundle.slos)
    assert email.sli == AvailabilitySli(degraded_weight=Decimal("0.5"))
    assert email.objective == Decimal("99.9")
    assert email.target == Decimal("0.999")
    assert email.window == CalendarWindow("month", "Asia/Shanghai")
    assert api.sli == RatioSli("requests")
    assert api.window == RollingWindow(28 * 86_400)
    assert (api.budgeting, api.timeslice_target, api.timeslice_min_events) == ("timeslices", Decimal(95), 10)
    assert api.no_data_after_seconds == 1_800


def test_a_dumped_bundle_gives_the_same_definitions() -> None:
    bundle = parse_bundle(BUNDLE)
    again = parse_bundle(json.dumps(dump_bundle(bundle)), content_type="json")
    assert [slo_definition(c) for c in again.slos] == [slo_definition(c) for c in bundle.slos]


@pytest.mark.parametrize(
    ("old", "new", "path", "line", "words"),
    [
        ("objective: 99.9", "objective: 100", "slos[0].objective", 5, "strictly between 0 and 100"),
        ("objective: 99.5", "objective: high", "slos[1].objective", 10, "not a number"),
        ("type: availability", "type: latency", "slos[0].sli.type", 4, "not an SLI type"),
        ("degraded_weight: 0.5", "degraded_weight: 2", "slos[0].sli.degraded_weight", 4, "between 0 and 1"),
        ("calendar: month", "calendar: year", "slos[0].window.calendar", 6, "not one of"),
        ("timezone: Asia/Shanghai", "timezone: Mars/Base", "slos[0].window.timezone", 6, "IANA"),
        ("rolling: 28d", "rolling: 28", "slos[1].window.rolling", 11, "not a duration"),
        ("budgeting: timeslices", "budgeting: weekly", "slos[1].budgeting", 12, "not one of"),
        ("    timeslice_target: 95\n", "", "slos[1].timeslice_target", 7, "required with budgeting: timeslices"),
        ("no_data_after: 30m", "no_data_after: soon", "slos[1].no_data_after", 15, "not a duration"),
        ("    objective: 99.5\n", "    objectiv: 99.5\n", "slos[1].objectiv", 10, "unknown key"),
        ("rolling: 28d", "rolling: 500d", "slos[1].window.rolling", 11, "longer than the longest allowed, 400d"),
        ("rolling: 28d", "rolling: 3000000d", "slos[1].window.rolling", 11, "longer than 3660d"),
        ("no_data_after: 30m", "no_data_after: 401d", "slos[1].no_data_after", 15, "longest allowed"),
    ],
)
def test_an_invalid_slo_is_reported_with_its_path_and_line(
    old: str, new: str, path: str, line: int, words: str
) -> None:
    assert BUNDLE.count(old) == 1
    with pytest.raises(BundleError) as caught:
        parse_bundle(BUNDLE.replace(old, new))
    matching = [issue for issue in caught.value.errors if issue.path == path]
    assert matching, caught.value.errors
    assert matching[0].line == line
    assert words in matching[0].message


def test_a_threshold_sli_judges_samples_exactly() -> None:
    bundle = parse_bundle("""\
slos:
  - id: api-latency
    service: api
    sli: {type: threshold, sli: latency_ms, op: "<=", value: 300}
    objective: 99
    window: {rolling: 7d}
""")
    sli = slo_definition(bundle.slos[0]).sli
    assert sli == ThresholdSli("latency_ms", "<=", Decimal(300))
    assert sli.rollup_key == "threshold:latency_ms<=300"
    assert sli.meets(Decimal("300.0"))
    assert not sli.meets(Decimal("300.01"))
    with pytest.raises(BundleError) as caught:
        parse_bundle(
            BUNDLE.replace("{type: ratio, sli: requests}", "{type: threshold, sli: latency_ms, op: '=<', value: 300}")
        )
    assert [(issue.path, issue.line) for issue in caught.value.errors] == [("slos[1].sli.op", 9)]


def test_ticket_sla_attainment_is_an_slo_without_no_data_by_default() -> None:
    bundle = parse_bundle("""\
slos:
  - id: p2-resolution
    service: email
    sli: {type: ticket_sla, policy: gold-incidents, metric: resolution, priorities: [P2]}
    objective: 95
    window: {calendar: month}
""")
    slo = slo_definition(bundle.slos[0])
    assert slo.sli == TicketSlaSli("gold-incidents", "resolution", ("P2",))
    assert slo.no_data_after_seconds == 0


MAINTAINED = """\
slos:
  - id: email-week
    service: email
    sli:
      type: availability
      maintenance:
        - {rrule: "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2", dtstart: "2026-01-04T02:00", duration: 2h}
    objective: 99.9
    window: {rolling: 7d}
"""


@pytest.mark.parametrize(
    ("old", "new", "path", "words"),
    [
        # Never occurs (no 30 February): the RRULE library would walk to the year 9999 at every evaluation.
        (
            "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2",
            "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
            "rrule",
            "does not occur in the 5 years",
        ),
        (
            "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2",
            "FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29",
            "rrule",
            "does not occur in the 5 years",
        ),  # 2026, 2030, ...: never a leap year
        ("BYHOUR=2", "BYHOUR=2;UNTIL=20250101T000000Z", "rrule", "ends (UNTIL) before its first occurrence"),
        # Every minute over a 7-day window and 3 days of lookbacks: 1,440 a day, 14,400 per evaluation.
        ("FREQ=WEEKLY;BYDAY=SU;BYHOUR=2", "FREQ=MINUTELY", "rrule", "more than 10,000 times"),
        ("duration: 2h", "duration: 500d", "duration", "longest allowed"),
    ],
)
def test_a_recurring_window_is_bounded_at_apply(old: str, new: str, path: str, words: str) -> None:
    with pytest.raises(BundleError) as caught:
        parse_bundle(MAINTAINED.replace(old, new))
    matching = [issue for issue in caught.value.errors if issue.path == f"slos[0].sli.maintenance[0].{path}"]
    assert matching, caught.value.errors
    assert matching[0].line == 7
    assert words in matching[0].message


def test_a_bundle_stored_before_the_bounds_still_reads_back() -> None:
    text = BUNDLE.replace("rolling: 28d", "rolling: 500d")
    with pytest.raises(BundleError):
        parse_bundle(text)
    stored = parse_bundle(text, stored=True)
    assert slo_definition(stored.slos[1]).window == RollingWindow(500 * 86_400)
