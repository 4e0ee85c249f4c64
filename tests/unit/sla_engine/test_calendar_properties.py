"""Properties of business time on random calendars, an independent day-by-day oracle, and businesstimedelta."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import businesstimedelta
import holidays
import pytz  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from slm_shared.business_time import WEEKDAYS, BusinessCalendar
from tests.unit.sla_engine.builders import make_calendar

DST_ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Shanghai", "Australia/Lord_Howe", "America/Santiago"]
FIXED_ZONES = ["UTC", "Asia/Shanghai", "Etc/GMT-8", "Etc/GMT+5"]
EARLIEST = int(datetime(2025, 6, 1, tzinfo=UTC).timestamp())
LATEST = int(datetime(2027, 6, 1, tzinfo=UTC).timestamp())
DAY = 86_400


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def day_hours(draw: st.DrawFn) -> list[str]:
    """0 to 3 intervals on a 15-minute grid, 24:00 allowed as an end."""
    points = sorted(draw(st.lists(st.integers(0, 96), unique=True, max_size=6)))
    return [f"{_clock(points[i] * 15)}-{_clock(points[i + 1] * 15)}" for i in range(0, len(points) - 1, 2)]


@st.composite
def calendars(draw: st.DrawFn, zones: list[str] = DST_ZONES) -> BusinessCalendar:
    week = {day: draw(day_hours()) for day in WEEKDAYS}
    worked = [day for day in WEEKDAYS if week[day]]
    if not worked:
        week["wed"] = ["10:00-11:30"]
        worked = ["wed"]
    extra: dict[str, Any] = {}
    country = draw(st.sampled_from([None, "CN", "US", "DE"]))
    if country:
        extra["holidays"] = {"country": country}
    days = st.dates(date(2025, 5, 1), date(2027, 7, 1))
    extra_holidays = draw(st.lists(days, max_size=8, unique=True))
    if extra_holidays:
        extra["extra_holidays"] = [d.isoformat() for d in extra_holidays]
    makeup = draw(st.lists(days, max_size=4, unique=True).map(lambda ds: [d for d in ds if d not in extra_holidays]))
    if makeup:
        extra["extra_workdays"] = {d.isoformat(): draw(st.sampled_from(worked)) for d in makeup}
    return make_calendar(
        {day: hours for day, hours in week.items() if hours}, timezone=draw(st.sampled_from(zones)), **extra
    )


instants = st.integers(EARLIEST, LATEST).map(lambda seconds: datetime.fromtimestamp(seconds, UTC))
amounts = st.integers(0, 12 * DAY)


@settings(max_examples=150, deadline=None)
@given(calendars(), instants, instants, instants)
def test_elapsed_is_additive(calendar: BusinessCalendar, x: datetime, y: datetime, z: datetime) -> None:
    a, b, c = sorted((x, y, z))
    between = calendar.business_seconds_between
    assert between(a, c) == between(a, b) + between(b, c)


@settings(max_examples=150, deadline=None)
@given(calendars(), instants, amounts)
def test_deadline_after_inverts_elapsed_and_is_the_earliest_such_instant(
    calendar: BusinessCalendar, start: datetime, seconds: int
) -> None:
    deadline = calendar.deadline_after(start, seconds)
    assert deadline >= start
    assert calendar.business_seconds_between(start, deadline) == seconds
    if seconds > 0:
        # Elapsed grows at most one second per second, so one second earlier is one business second short.
        assert calendar.business_seconds_between(start, deadline - timedelta(seconds=1)) == seconds - 1


@settings(max_examples=150, deadline=None)
@given(calendars(), instants, instants, instants, amounts, amounts)
def test_elapsed_and_deadlines_are_monotonic(
    calendar: BusinessCalendar, origin: datetime, first: datetime, second: datetime, seconds: int, more: int
) -> None:
    early, late = sorted((first, second))
    assert calendar.business_seconds_between(origin, early) <= calendar.business_seconds_between(origin, late)
    assert calendar.business_seconds_between(early, origin) >= calendar.business_seconds_between(late, origin)
    assert calendar.deadline_after(early, seconds) <= calendar.deadline_after(late, seconds)
    assert calendar.deadline_after(early, seconds) <= calendar.deadline_after(early, seconds + more)


def day_by_day(calendar: BusinessCalendar, start: datetime, end: datetime) -> int:
    """An independent oracle: walk local dates, convert each interval with zoneinfo, union, intersect."""
    config = calendar.config
    zone = ZoneInfo(config.timezone)
    makeup = dict(config.extra_workdays)
    day = start.astimezone(zone).date() - timedelta(days=2)
    last = end.astimezone(zone).date() + timedelta(days=1)
    table = (
        holidays.country_holidays(config.holidays_country, years=range(day.year, last.year + 1))
        if config.holidays_country
        else {}
    )
    intervals = []
    while day <= last:
        if day in makeup:
            hours = config.hours[makeup[day]]
        elif day in config.extra_holidays or day in table:
            hours = ()
        else:
            hours = config.hours[day.weekday()]
        for wall_start, wall_end in hours:
            midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
            begin = (midnight.replace(tzinfo=None) + timedelta(seconds=wall_start)).replace(tzinfo=zone)
            finish = (midnight.replace(tzinfo=None) + timedelta(seconds=wall_end)).replace(tzinfo=zone)
            intervals.append((begin.timestamp(), finish.timestamp()))
        day += timedelta(days=1)
    covered, cursor = 0.0, float("-inf")
    low, high = start.timestamp(), end.timestamp()
    for opening, closing in sorted(intervals):
        counted_from, counted_to = max(opening, cursor, low), min(closing, high)
        if counted_to > counted_from:
            covered += counted_to - counted_from
        cursor = max(cursor, closing)
    return int(covered)


@settings(max_examples=150, deadline=None)
@given(calendars(), instants, st.integers(0, 20 * DAY))
def test_elapsed_equals_a_day_by_day_oracle(calendar: BusinessCalendar, start: datetime, span: int) -> None:
    end = start + timedelta(seconds=span)
    assert calendar.business_seconds_between(start, end) == day_by_day(calendar, start, end)


# -- differential test against businesstimedelta, on calendars both can express -------------------------

# businesstimedelta's holiday search gives up after five years: keep a holiday within reach of every query.
SENTINEL_HOLIDAYS = [date(2029, 1, 1), date(2031, 1, 1)]


@st.composite
def shared_calendars(draw: st.DrawFn) -> tuple[BusinessCalendar, Any]:
    """One interval on a set of weekdays in a zone without DST, plus holidays: ours and businesstimedelta's."""
    # businesstimedelta has no 24:00 end (it would be an overnight rule), so intervals end by 23:30.
    first, last = sorted(draw(st.lists(st.integers(0, 47), unique=True, min_size=2, max_size=2)))
    start_minutes, end_minutes = first * 30, last * 30
    days = draw(st.lists(st.integers(0, 6), unique=True, min_size=1, max_size=7))
    zone = draw(st.sampled_from(FIXED_ZONES))
    off = draw(st.lists(st.dates(date(2025, 5, 1), date(2027, 7, 1)), max_size=10, unique=True))
    interval = f"{_clock(start_minutes)}-{_clock(end_minutes)}"
    ours = make_calendar(
        {WEEKDAYS[d]: [interval] for d in days},
        timezone=zone,
        extra_holidays=[d.isoformat() for d in off + SENTINEL_HOLIDAYS],
    )
    tz = pytz.timezone(zone)
    workday = businesstimedelta.WorkDayRule(
        start_time=time(*divmod(start_minutes, 60)),
        end_time=time(*divmod(end_minutes, 60)),
        working_days=sorted(days),
        tz=tz,
    )
    rules = businesstimedelta.Rules([workday, businesstimedelta.HolidayRule(off + SENTINEL_HOLIDAYS, tz=tz)])
    return ours, rules


@settings(max_examples=150, deadline=None)
@given(shared_calendars(), instants, st.integers(1, 5 * DAY), st.integers(0, 10 * DAY))
def test_elapsed_and_deadlines_agree_with_businesstimedelta(
    pair: tuple[BusinessCalendar, Any], start: datetime, seconds: int, span: int
) -> None:
    ours, theirs = pair
    end = start + timedelta(seconds=span)
    difference = theirs.difference(start, end)
    assert ours.business_seconds_between(start, end) == difference.hours * 3600 + difference.seconds
    expected_deadline = start + businesstimedelta.BusinessTimeDelta(theirs, seconds=seconds)
    assert ours.deadline_after(start, seconds) == expected_deadline
