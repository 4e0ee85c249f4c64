"""Business time, hand-computed: lunch breaks, weekends, holidays by name, make-up days and DST days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from slm_shared.business_time import TWENTY_FOUR_SEVEN, BusinessCalendar
from tests.unit.sla_engine.builders import CN_HOURS, local, make_calendar, utc

SH = "Asia/Shanghai"
NY = "America/New_York"
BERLIN = "Europe/Berlin"
H = 3600

CN = make_calendar(CN_HOURS)
CN_HOLIDAYS = make_calendar(CN_HOURS, holidays={"country": "CN"})
CN_MAKEUP = make_calendar(
    CN_HOURS, holidays={"country": "CN"}, extra_workdays={"2026-10-10": "fri", "2026-10-07": "wed"}
)
SPLIT = make_calendar({"mon-fri": ["08:00-10:00", "11:00-12:30", "14:00-17:45"], "sat": ["10:00-14:00"]})
NY_NIGHT = make_calendar({"sun": ["01:00-04:00"]}, timezone=NY)
NY_FALLBACK_HOUR = make_calendar({"sun": ["01:00-02:00"]}, timezone=NY)
NY_GAP = make_calendar({"sun": ["02:30-05:00"]}, timezone=NY)
BERLIN_OFFICE = make_calendar({"mon-fri": ["09:00-17:00"]}, timezone=BERLIN)
BERLIN_SUNDAYS = make_calendar({"sun": ["00:00-24:00"]}, timezone=BERLIN)

ELAPSED_CASES = [
    # (id, calendar, start, end, business seconds)
    ("inside one morning interval", CN, local(SH, "2026-11-09 09:30"), local(SH, "2026-11-09 11:00"), 5400),
    ("across the lunch break", CN, local(SH, "2026-11-09 11:00"), local(SH, "2026-11-09 14:00"), 2 * H),
    ("from before opening", CN, local(SH, "2026-11-09 07:00"), local(SH, "2026-11-09 10:00"), H),
    ("one full working day", CN, local(SH, "2026-11-09 00:00"), local(SH, "2026-11-10 00:00"), 8 * H),
    ("friday afternoon to monday morning", CN, local(SH, "2026-11-06 16:00"), local(SH, "2026-11-09 10:00"), 3 * H),
    ("a weekend only", CN, local(SH, "2026-11-07 00:00"), local(SH, "2026-11-09 00:00"), 0),
    ("end before start", CN, local(SH, "2026-11-09 11:00"), local(SH, "2026-11-09 10:00"), 0),
    (
        "national day week from the holidays package",
        CN_HOLIDAYS,
        local(SH, "2026-09-30 17:00"),
        local(SH, "2026-10-08 10:00"),
        2 * H,
    ),
    (
        "the same week without holidays",
        CN,
        local(SH, "2026-09-30 17:00"),
        local(SH, "2026-10-08 10:00"),
        H + 5 * 8 * H + H,
    ),
    (
        "a make-up saturday is worked with friday's hours",
        CN_MAKEUP,
        local(SH, "2026-10-10 08:00"),
        local(SH, "2026-10-11 00:00"),
        8 * H,
    ),
    (
        "a make-up day overrides a country holiday",
        CN_MAKEUP,
        local(SH, "2026-10-07 00:00"),
        local(SH, "2026-10-08 00:00"),
        8 * H,
    ),
    (
        "that country holiday is off without the make-up entry",
        CN_HOLIDAYS,
        local(SH, "2026-10-07 00:00"),
        local(SH, "2026-10-08 00:00"),
        0,
    ),
    ("several intervals a day", SPLIT, local(SH, "2026-11-09 09:00"), local(SH, "2026-11-09 15:00"), 12600),
    ("a whole day of several intervals", SPLIT, local(SH, "2026-11-09 00:00"), local(SH, "2026-11-10 00:00"), 26100),
    ("saturday hours differ", SPLIT, local(SH, "2026-11-14 00:00"), local(SH, "2026-11-15 00:00"), 4 * H),
    (
        "spring forward shortens 01:00-04:00 to two real hours",
        NY_NIGHT,
        local(NY, "2026-03-07 12:00"),
        local(NY, "2026-03-09 00:00"),
        2 * H,
    ),
    (
        "fall back lengthens 01:00-04:00 to four real hours",
        NY_NIGHT,
        local(NY, "2026-10-31 12:00"),
        local(NY, "2026-11-02 00:00"),
        4 * H,
    ),
    (
        "fall back: 01:00 EDT to 02:00 EST is two real hours",
        NY_FALLBACK_HOUR,
        local(NY, "2026-10-31 12:00"),
        local(NY, "2026-11-02 00:00"),
        2 * H,
    ),
    (
        "spring forward: 02:30 does not exist and fold=0 reads it as 03:30 EDT",
        NY_GAP,
        local(NY, "2026-03-07 12:00"),
        local(NY, "2026-03-09 00:00"),
        5400,
    ),
    (
        "a 00:00-24:00 sunday lasts 23h on the spring-forward day",
        BERLIN_SUNDAYS,
        local(BERLIN, "2026-03-28 12:00"),
        local(BERLIN, "2026-03-30 00:00"),
        23 * H,
    ),
    (
        "a 00:00-24:00 sunday lasts 25h on the fall-back day",
        BERLIN_SUNDAYS,
        local(BERLIN, "2026-10-24 12:00"),
        local(BERLIN, "2026-10-26 00:00"),
        25 * H,
    ),
    (
        "office hours follow the zone across the change",
        BERLIN_OFFICE,
        utc("2026-03-27 15:00"),
        utc("2026-03-30 08:00"),
        2 * H,
    ),
    (
        "24x7 counts the real hour of a fall-back night",
        TWENTY_FOUR_SEVEN,
        local(NY, "2026-10-31 23:00"),
        datetime(2026, 11, 1, 3, 0, tzinfo=UTC) + timedelta(hours=5),
        5 * H,
    ),
]


@pytest.mark.parametrize(
    ("calendar", "start", "end", "expected"), [c[1:] for c in ELAPSED_CASES], ids=[c[0] for c in ELAPSED_CASES]
)
def test_business_seconds_between_counts_only_working_time(
    calendar: BusinessCalendar, start: datetime, end: datetime, expected: int
) -> None:
    assert calendar.business_seconds_between(start, end) == expected


DEADLINE_CASES = [
    # (id, calendar, start, business seconds, deadline)
    (
        "a full day ends at closing time, not next morning",
        CN,
        local(SH, "2026-11-09 09:00"),
        8 * H,
        local(SH, "2026-11-09 18:00"),
    ),
    ("an hour across lunch", CN, local(SH, "2026-11-09 11:30"), H, local(SH, "2026-11-09 13:30")),
    ("ending exactly at the lunch break", CN, local(SH, "2026-11-09 11:00"), H, local(SH, "2026-11-09 12:00")),
    ("starting inside lunch", CN, local(SH, "2026-11-09 12:30"), 1800, local(SH, "2026-11-09 13:30")),
    ("over the weekend", CN, local(SH, "2026-11-06 17:00"), 2 * H, local(SH, "2026-11-09 10:00")),
    ("one second from a saturday", CN, local(SH, "2026-11-07 10:00"), 1, local(SH, "2026-11-09 09:00:01")),
    ("zero is the start itself, even off hours", CN, local(SH, "2026-11-07 10:00"), 0, local(SH, "2026-11-07 10:00")),
    ("national day week is skipped", CN_HOLIDAYS, local(SH, "2026-09-30 17:00"), 4 * H, local(SH, "2026-10-08 12:00")),
    ("the make-up saturday is used", CN_MAKEUP, local(SH, "2026-10-09 17:00"), 4 * H, local(SH, "2026-10-10 12:00")),
    (
        "without it the deadline is monday",
        CN_HOLIDAYS,
        local(SH, "2026-10-09 17:00"),
        4 * H,
        local(SH, "2026-10-12 12:00"),
    ),
    ("several intervals a day", SPLIT, local(SH, "2026-11-09 09:00"), 4 * H, local(SH, "2026-11-09 15:30")),
    (
        "three hours into the fall-back night end at 03:00 EST",
        NY_NIGHT,
        local(NY, "2026-11-01 01:00"),
        3 * H,
        utc("2026-11-01 08:00"),
    ),
    (
        "ninety minutes into the spring-forward night end at 03:30 EDT",
        NY_NIGHT,
        local(NY, "2026-03-08 01:00"),
        5400,
        utc("2026-03-08 07:30"),
    ),
    (
        "berlin office hours across the spring change",
        BERLIN_OFFICE,
        utc("2026-03-27 15:00"),
        2 * H,
        utc("2026-03-30 08:00"),
    ),
    (
        "24x7 across the fall-back night",
        TWENTY_FOUR_SEVEN,
        local(NY, "2026-10-31 23:00"),
        16200,
        utc("2026-11-01 07:30"),
    ),
]


@pytest.mark.parametrize(
    ("calendar", "start", "seconds", "expected"), [c[1:] for c in DEADLINE_CASES], ids=[c[0] for c in DEADLINE_CASES]
)
def test_deadline_after_is_the_earliest_instant_with_that_much_business_time(
    calendar: BusinessCalendar, start: datetime, seconds: int, expected: datetime
) -> None:
    deadline = calendar.deadline_after(start, seconds)
    assert deadline == expected
    assert deadline.tzinfo is UTC


def test_non_working_spans_name_each_reason_and_merge_equal_neighbours() -> None:
    spans = CN.non_working_spans(local(SH, "2026-11-06 16:00"), local(SH, "2026-11-09 14:00"))
    assert [(s.start, s.end, s.reason) for s in spans] == [
        (local(SH, "2026-11-06 18:00"), local(SH, "2026-11-07 00:00"), "outside working hours"),
        (local(SH, "2026-11-07 00:00"), local(SH, "2026-11-09 00:00"), "weekend"),
        (local(SH, "2026-11-09 00:00"), local(SH, "2026-11-09 09:00"), "outside working hours"),
        (local(SH, "2026-11-09 12:00"), local(SH, "2026-11-09 13:00"), "outside working hours"),
    ]
    assert [s.seconds for s in spans] == [6 * H, 48 * H, 9 * H, H]


def test_non_working_spans_carry_holiday_names_from_the_holidays_package() -> None:
    spans = CN_HOLIDAYS.non_working_spans(local(SH, "2026-09-30 17:00"), local(SH, "2026-10-08 10:00"))
    reasons = [s.reason for s in spans]
    assert "holiday: National Day" in reasons
    assert reasons.count("weekend") == 1  # Sunday 4 October; Saturday 3 October is National Day itself
    national_day = next(s for s in spans if s.reason == "holiday: National Day")
    assert (national_day.start, national_day.end) == (local(SH, "2026-10-01 00:00"), local(SH, "2026-10-04 00:00"))


def test_extra_holidays_are_named_as_such() -> None:
    calendar = make_calendar(CN_HOURS, extra_holidays=["2026-11-11"])
    spans = calendar.non_working_spans(local(SH, "2026-11-11 10:00"), local(SH, "2026-11-11 11:00"))
    assert [s.reason for s in spans] == ["holiday: company holiday (extra_holidays)"]
    assert calendar.business_seconds_between(local(SH, "2026-11-11 00:00"), local(SH, "2026-11-12 00:00")) == 0


def test_a_weekday_without_hours_that_is_not_a_weekend_day_says_so() -> None:
    calendar = make_calendar({"sun-thu": ["08:00-16:00"]}, timezone="Asia/Dubai")
    spans = calendar.non_working_spans(local("Asia/Dubai", "2026-11-06 10:00"), local("Asia/Dubai", "2026-11-06 11:00"))
    assert [s.reason for s in spans] == ["no working hours on Friday"]


def test_the_24x7_calendar_has_no_non_working_time_and_counts_true_seconds() -> None:
    start, end = local(NY, "2026-03-08 00:00"), local(NY, "2026-03-09 00:00")
    assert TWENTY_FOUR_SEVEN.non_working_spans(start, end) == []
    assert TWENTY_FOUR_SEVEN.business_seconds_between(start, end) == 23 * H
    assert TWENTY_FOUR_SEVEN.name == "24x7"


def test_fractions_of_a_second_are_floored() -> None:
    start = local(SH, "2026-11-09 09:00:00.900000")
    end = local(SH, "2026-11-09 09:00:10.100000")
    assert CN.business_seconds_between(start, end) == 10


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        CN.business_seconds_between(datetime(2026, 11, 9, 9), local(SH, "2026-11-09 10:00"))  # noqa: DTZ001


def test_far_apart_years_give_the_same_answer_whichever_is_asked_first() -> None:
    early, late = local(SH, "1995-03-01 10:00"), local(SH, "2090-07-01 10:00")
    forwards, backwards = (
        make_calendar(CN_HOURS, holidays={"country": "CN"}),
        make_calendar(CN_HOURS, holidays={"country": "CN"}),
    )
    forwards.business_seconds_between(early, early + timedelta(days=3))
    backwards.business_seconds_between(late, late + timedelta(days=3))
    assert forwards.business_seconds_between(early, late) == backwards.business_seconds_between(early, late)
    middle = local(SH, "2040-01-01 00:00")
    assert backwards.business_seconds_between(early, late) == (
        backwards.business_seconds_between(early, middle) + backwards.business_seconds_between(middle, late)
    )


def test_a_long_deadline_grows_the_index_ahead() -> None:
    calendar = make_calendar(CN_HOURS)
    start = local(SH, "2026-01-05 09:00")  # a Monday
    deadline = calendar.deadline_after(start, 52 * 5 * 8 * H)  # 52 full weeks of working time
    # The 52nd Friday after Monday 5 January 2026 is 1 January 2027 (no holidays in this calendar).
    assert deadline == local(SH, "2027-01-01 18:00")
    assert calendar.business_seconds_between(start, deadline) == 52 * 5 * 8 * H


def test_instants_outside_the_supported_years_are_refused_clearly() -> None:
    calendar = make_calendar(CN_HOURS)
    with pytest.raises(ValueError, match=r"1900\.\.2200"):
        calendar.business_seconds_between(local(SH, "1850-01-01 00:00"), local(SH, "2026-01-01 00:00"))
    with pytest.raises(ValueError, match=r"1900\.\.2200"):
        calendar.deadline_after(local(SH, "2200-06-01 09:00"), 10**9)
    assert TWENTY_FOUR_SEVEN.business_seconds_between(utc("1850-01-01 00:00"), utc("1850-01-02 00:00")) == 86400
