"""Notification figures and lead-time triggers in the clock's business time, worked out by hand on the calendar
below (Asia/Shanghai, UTC+8 all year): Monday to Friday 09:00-12:00 and 13:00-18:00, China's public holidays.
2026-12-07 is a Monday; 2027-01-01 (a Friday) is New Year's Day."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from reporting.domain.live import business_calendar
from reporting.domain.notifications import ClockNow, values_at
from slm_shared.events import CalendarData

SHANGHAI = ZoneInfo("Asia/Shanghai")
WORKDAY = ((9 * 3600, 12 * 3600), (13 * 3600, 18 * 3600))
CN_BUSINESS = CalendarData(calendar_id="cn-business", bundle_version=3, timezone="Asia/Shanghai",
                           hours=(WORKDAY,) * 5 + ((), ()), holidays_country="CN")
CALENDARS = {("cn-business", 3): business_calendar(CN_BUSINESS)}


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def running(last: datetime, elapsed: int, due: datetime, target: int = 28_800, version: int = 3) -> ClockNow:
    return ClockNow("running", False, target, elapsed, last, due, None, "cn-business", version)


def test_figures_at_sending_time_leave_out_the_lunch_break() -> None:
    # Last transition Monday 11:30 with nothing elapsed; sent at 14:00: 11:30-12:00 and 13:00-14:00 count
    # (1,800 + 3,600 s), the lunch hour does not. Of 8 h: 23,400 s remain, 18.75 %.
    clock = running(local(2026, 12, 7, 11, 30), 0, local(2026, 12, 8, 11, 30))
    values = values_at(clock, local(2026, 12, 7, 14), CALENDARS)
    assert (values.elapsed_seconds, values.remaining_seconds, values.percent) == (5_400, 23_400, 18.75)
    assert (values.exact, values.as_of, values.due_at, values.note) == (
        True, local(2026, 12, 7, 14), local(2026, 12, 8, 11, 30), None)


def test_figures_at_sending_time_leave_out_a_holiday_and_the_weekend() -> None:
    # Thursday 31 December 17:00 -> Monday 4 January 10:00: 17:00-18:00, then New Year's Day and the weekend
    # count nothing, then 09:00-10:00: 7,200 s on top of the 3,600 already elapsed.
    clock = running(local(2026, 12, 31, 17), 3_600, local(2027, 1, 4, 15))
    values = values_at(clock, local(2027, 1, 4, 10), CALENDARS)
    assert (values.elapsed_seconds, values.remaining_seconds, values.percent, values.exact) == (
        10_800, 18_000, 37.5, True)


def test_a_clock_pinned_to_a_bundle_version_whose_calendar_is_unknown_keeps_its_figures_as_of() -> None:
    last = local(2026, 12, 7, 11, 30)
    clock = running(last, 1_800, local(2026, 12, 8, 11), version=4)  # version 4 was never announced
    values = values_at(clock, last + timedelta(hours=3), CALENDARS)
    assert (values.elapsed_seconds, values.remaining_seconds, values.exact, values.as_of) == (
        1_800, 27_000, False, last)
    assert values.note is not None
    assert "bundle version 4" in values.note
