"""Timeslices longer than a minute and ratio timeslices, with hand-checked numbers."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from sla_engine.domain.bundle import BundleError, parse_bundle
from sla_engine.domain.slo.evaluation import evaluate
from sla_engine.domain.slo.rollups import RatioMinute
from sla_engine.domain.slo.series import ratio_counts

from .builders import slo_from_yaml, utc

FIVE_MINUTE_SLICES = """\
  - id: api-slices
    service: api
    sli: {type: ratio, sli: requests}
    objective: 90
    window: {rolling: 1h}
    budgeting: timeslices
    timeslice: 5m
    timeslice_target: 95
    timeslice_min_events: 10
"""


def rows() -> list[RatioMinute]:
    start = utc("2026-03-01T00:00:00")
    return [
        # 00:00-00:05: five minutes of 96/100 -> 480/500 = 96 %: a good slice.
        *(RatioMinute(start + timedelta(minutes=m), 96, 100) for m in range(5)),
        # 00:05-00:10: 50/100 and 100/100 -> 150/200 = 75 %: a bad slice.
        RatioMinute(utc("2026-03-01T00:05:00"), 50, 100),
        RatioMinute(utc("2026-03-01T00:06:00"), 100, 100),
        # 00:10-00:15: 5 events, under timeslice_min_events: not judged.
        RatioMinute(utc("2026-03-01T00:12:00"), 5, 5),
    ]


def test_five_minute_slices_are_judged_on_their_summed_counts() -> None:
    slo = slo_from_yaml(FIVE_MINUTE_SLICES)
    assert slo.timeslice_seconds == 300
    status = evaluate(slo, ratio_counts(rows()), utc("2026-03-01T01:00:00"))
    assert (status.good, status.total) == (Decimal(1), Decimal(2))
    # The 1 h window holds 12 five-minute slices; 10 % of them is 1.2 slices of budget.
    assert status.error_budget_total == Decimal("1.2")
    assert status.error_budget_consumed == 1
    assert status.error_budget_remaining == Decimal("0.2")


def test_the_same_minutes_in_one_minute_slices_give_more_slices() -> None:
    slo = slo_from_yaml(
        FIVE_MINUTE_SLICES.replace("    timeslice: 5m\n", "").replace(
            "timeslice_min_events: 10", "timeslice_min_events: 10\n    timeslice: 1m"
        )
    )
    status = evaluate(slo, ratio_counts(rows()), utc("2026-03-01T01:00:00"))
    # Minutes 00:00-00:04 good (96 %), 00:05 bad (50 %), 00:06 good, 00:12 not judged (5 events).
    assert (status.good, status.total) == (Decimal(6), Decimal(7))
    assert status.error_budget_total == Decimal("6.0")  # 10 % of 60 one-minute slices


def test_burn_rate_lookbacks_judge_the_slices_their_minutes_form() -> None:
    slo = slo_from_yaml(FIVE_MINUTE_SLICES)
    status = evaluate(slo, ratio_counts(rows()), utc("2026-03-01T00:08:00"))
    # At 00:08 the 5m lookback covers minutes 00:03-00:07: 00:03-00:04 form a good partial slice (192/200),
    # 00:05-00:06 a bad one (150/200): 1 bad of 2. The 1h lookback judges both full slices: also 1 of 2.
    assert (status.spans["5m"].bad, status.spans["5m"].total) == (Decimal(1), Decimal(2))
    assert (status.spans["1h"].bad, status.spans["1h"].total) == (Decimal(1), Decimal(2))


def test_calendar_window_slices_start_at_the_window_start() -> None:
    slo = slo_from_yaml("""\
  - id: api-slices
    service: api
    sli: {type: ratio, sli: requests}
    objective: 99
    window: {calendar: month, timezone: Asia/Kolkata}
    budgeting: timeslices
    timeslice: 1h
    timeslice_target: 95
""")
    # November in Kolkata (+05:30) starts at 31 October 18:30Z, so hour slices run 18:30-19:30, 19:30-20:30 UTC.
    minutes = [RatioMinute(utc("2026-10-31T19:10:00"), 0, 1), RatioMinute(utc("2026-10-31T19:40:00"), 1, 1)]
    status = evaluate(slo, ratio_counts(minutes), utc("2026-11-01T00:00:00"))
    assert status.window_start == utc("2026-10-31T18:30:00")
    # One bad and one good slice (UTC hours would have put both minutes in one bad slice).
    assert (status.good, status.total) == (Decimal(1), Decimal(2))
    assert status.error_budget_total == Decimal("7.2")  # 1 % of 30 x 24 = 720 hour slices


def test_ratio_timeslices_average_the_slice_ratios() -> None:
    slo = slo_from_yaml("""\
  - id: api-ratio-slices
    service: api
    sli: {type: ratio, sli: requests}
    objective: 99
    window: {rolling: 1h}
    budgeting: ratio_timeslices
    timeslice: 5m
    timeslice_min_events: 10
""")
    status = evaluate(slo, ratio_counts(rows()), utc("2026-03-01T01:00:00"))
    # Slice ratios 480/500 = 0.96 and 150/200 = 0.75; the third slice is not judged.
    assert status.good == Decimal("1.71")
    assert status.total == 2
    assert status.sli_value == Decimal("0.855")
    assert status.error_budget_total == Decimal("0.12")  # 1 % of 12 slices
    assert status.error_budget_consumed == Decimal("0.29")
    assert status.error_budget_remaining == Decimal("-0.17")


@pytest.mark.parametrize(
    ("timeslice", "budgeting", "window", "words"),
    [
        ("7m", "timeslices", "rolling: 1d", "not whole minutes dividing a day"),
        ("90s", "timeslices", "rolling: 1d", "not whole minutes dividing a day"),
        ("2d", "timeslices", "rolling: 28d", "not whole minutes dividing a day"),
        ("1h", "timeslices", "rolling: 90m", "not a whole number of 1h slices"),
        ("5m", "occurrences", "rolling: 1d", "applies to budgeting: timeslices or ratio_timeslices only"),
    ],
)
def test_a_slice_length_that_cannot_tile_the_window_is_an_error(
    timeslice: str, budgeting: str, window: str, words: str
) -> None:
    with pytest.raises(BundleError) as caught:
        parse_bundle(f"""\
slos:
  - id: api
    service: api
    sli: {{type: ratio, sli: requests}}
    objective: 99
    window: {{{window}}}
    budgeting: {budgeting}
    timeslice_target: 95
    timeslice: {timeslice}
""")
    assert [(issue.path, issue.line) for issue in caught.value.errors] == [("slos[0].timeslice", 9)]
    assert words in caught.value.errors[0].message
