"""Running clocks brought forward to the report's instant (reporting.domain.live).

The business-calendar values are worked out by hand from the calendar below (Shanghai, UTC+8 all year):
Monday to Friday 09:00-12:00 and 13:00-18:00 (8 working hours a day), China's public holidays, and the
2026 National Day make-up Saturday, 10 October, worked with Friday's hours.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from reporting.domain.live import business_calendar, live_breach, live_clock, live_values, working_calendar
from reporting.domain.model import BreachedCycle, ClockRow
from slm_shared.business_time import TWENTY_FOUR_SEVEN
from slm_shared.events import CalendarData

AS_OF = datetime(2026, 12, 6, 10, 0, 0, 787_000, tzinfo=UTC)  # a `recalculated` stamped mid-second
SHANGHAI = ZoneInfo("Asia/Shanghai")
WORKDAY = ((9 * 3600, 12 * 3600), (13 * 3600, 18 * 3600))
CN_BUSINESS = CalendarData(
    calendar_id="cn-business",
    bundle_version=3,
    timezone="Asia/Shanghai",
    hours=(WORKDAY,) * 5 + ((), ()),
    holidays_country="CN",
    extra_workdays=((date(2026, 10, 10), 4),),
)
CALENDAR = business_calendar(CN_BUSINESS)


def local(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def test_a_running_24x7_clock_gains_the_whole_seconds_between_as_the_engine_floors_them() -> None:
    # The engine's elapsed at 10:00:00.787 counted up to 10:00:00; at 10:01:40.500 it counts up to 10:01:40: 100 s
    # more, not the 99 that flooring the 99.713 s in between would give.
    at = datetime(2026, 12, 6, 10, 1, 40, 500_000, tzinfo=UTC)
    values = live_values("running", TWENTY_FOUR_SEVEN, 1_000, 3_600, AS_OF, at)
    assert (values.elapsed_seconds, values.remaining_seconds, values.live) == (1_100, 2_500, True)


def test_a_running_clock_of_a_calendar_reporting_does_not_know_keeps_its_stored_value_marked_as_of() -> None:
    at = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    values = live_values("running", None, 1_000, 3_600, AS_OF, at)
    assert (values.elapsed_seconds, values.live) == (1_000, False)


def test_a_paused_clock_does_not_grow_and_is_exact_at_any_later_instant() -> None:
    at = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    values = live_values("paused", None, 1_000, 3_600, AS_OF, at)
    assert (values.elapsed_seconds, values.live) == (1_000, True)


def test_a_clock_running_over_the_lunch_break_gains_only_the_working_minutes() -> None:
    # Monday 7 December 2026, 11:30 -> 14:15: 11:30-12:00 (1,800 s) and 13:00-14:15 (4,500 s) count, lunch not.
    values = live_values("running", CALENDAR, 1_000, 28_800, local(2026, 12, 7, 11, 30), local(2026, 12, 7, 14, 15))
    assert (values.elapsed_seconds, values.remaining_seconds, values.percent, values.live) == (
        7_300,
        21_500,
        25.35,
        True,
    )


def test_the_national_day_holidays_do_not_count() -> None:
    # Wednesday 30 September 17:00 -> Thursday 8 October 10:00: 17:00-18:00 on the 30th, nothing from 1 to 7
    # October (holidays, a weekend, two days off moved from make-up days), 09:00-10:00 on the 8th: 7,200 s.
    values = live_values("running", CALENDAR, 0, 28_800, local(2026, 9, 30, 17, 0), local(2026, 10, 8, 10, 0))
    assert values.elapsed_seconds == 7_200


def test_a_make_up_saturday_counts_with_fridays_hours() -> None:
    # Friday 9 October 17:30 -> Monday 12 October 09:30: 1,800 s on Friday, Saturday the 10th worked in full
    # (8 h = 28,800 s), Sunday not, 1,800 s on Monday: 32,400 s.
    values = live_values("running", CALENDAR, 0, 36_000, local(2026, 10, 9, 17, 30), local(2026, 10, 12, 9, 30))
    assert (values.elapsed_seconds, values.remaining_seconds) == (32_400, 3_600)


def test_a_clock_counts_with_the_calendar_of_the_bundle_version_it_is_pinned_to() -> None:
    known = {("cn-business", 3): CALENDAR}
    assert working_calendar("cn-business", 3, known) is CALENDAR
    assert working_calendar("cn-business", 2, known) is None
    assert working_calendar("24x7", 9, {}) is TWENTY_FOUR_SEVEN


def test_an_open_breach_and_a_listed_clock_are_brought_to_the_instant_with_their_calendar() -> None:
    as_of, at = local(2026, 12, 7, 11, 30), local(2026, 12, 7, 14, 15)  # 6,300 working seconds between
    breach = BreachedCycle(
        ticket_id="T-1",
        policy_id="p1",
        policy_version=3,
        agreement="SLA",
        metric="resolution",
        cycle=1,
        priority="P2",
        service="email",
        customer="acme",
        state="running",
        target_seconds=3_600,
        elapsed_seconds=4_000,
        over_target_seconds=400,
        over_target_percent=11.11,
        breached_at=None,
        stopped_at=None,
        calendar="cn-business",
        as_of=as_of,
    )
    moved = live_breach(breach, at, {("cn-business", 3): CALENDAR})
    assert (moved.elapsed_seconds, moved.over_target_seconds, moved.over_target_percent, moved.live) == (
        10_300,
        6_700,
        186.11,
        True,
    )
    row = ClockRow(
        ticket_id="T-2",
        policy_id="p1",
        policy_version=3,
        agreement="SLA",
        metric="resolution",
        cycle=1,
        state="running",
        breached=False,
        elapsed_seconds=0,
        target_seconds=28_800,
        started_at=as_of,
        stopped_at=None,
        breached_at=None,
        due_at=None,
        service="email",
        customer="acme",
        priority="P2",
        calendar="cn-business",
        as_of=as_of,
    )
    assert live_clock(row, at, {}).live is False  # the calendar has not arrived: as of its last transition
    assert (
        live_clock(row, at, {("cn-business", 3): CALENDAR}).elapsed_seconds,
        live_clock(row, at, {("cn-business", 3): CALENDAR}).remaining_seconds,
    ) == (6_300, 22_500)
