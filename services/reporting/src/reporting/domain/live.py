"""Running clocks at the report's instant: the read model holds each cycle as of its last transition, and a
clock that has run for hours since then must not be shown as it stood then.

Elapsed time is business time of the clock's calendar (DESIGN section 5), counted with the kit's business time
(`slm_shared.business_time`, the engine's own arithmetic) on the calendar the engine announced for the clock's
bundle version (`sla.calendar.v1`, kept by reporting.calendars). The built-in `24x7` needs no announcement:
every second counts. A paused or stopped cycle does not grow, so its stored value is already exact at any later
instant. A running cycle whose calendar reporting has not (yet) received keeps its stored value, marked
`live = False` with `as_of`, and the page says so; its `due_at` (computed by the engine) stays the exact deadline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from slm_shared.business_time import TWENTY_FOUR_SEVEN, BusinessCalendar, CalendarConfig

if TYPE_CHECKING:
    from datetime import datetime

    from reporting.domain.model import BreachedCycle, ClockRow
    from slm_shared.events import CalendarData

WALL_CLOCK_CALENDAR = TWENTY_FOUR_SEVEN.name
NOT_GROWING = frozenset({"paused", "met", "breached", "cancelled"})

CalendarKey = tuple[str, int]
"""A calendar as a clock refers to it: its id and the bundle version the clock is pinned to."""
Calendars = Mapping[CalendarKey, BusinessCalendar]


@dataclass(frozen=True)
class LiveValues:
    elapsed_seconds: int
    remaining_seconds: int
    percent: float | None
    live: bool  # True: the values hold at the instant asked for; False: they hold at `as_of`


def business_calendar(data: CalendarData) -> BusinessCalendar:
    """The calendar an `sla.calendar.v1` announces, as the engine builds it from its bundle."""
    return BusinessCalendar(
        CalendarConfig(
            name=data.calendar_id,
            timezone=data.timezone,
            hours=data.hours,
            holidays_country=data.holidays_country,
            holidays_subdivision=data.holidays_subdivision,
            extra_holidays=frozenset(data.extra_holidays),
            extra_workdays=data.extra_workdays,
        )
    )


def working_calendar(calendar: str, version: int, calendars: Calendars) -> BusinessCalendar | None:
    """The calendar a clock pinned to bundle `version` counts with, or None when reporting does not know it."""
    if calendar == WALL_CLOCK_CALENDAR:
        return TWENTY_FOUR_SEVEN
    return calendars.get((calendar, version))


def live_values(
    state: str,
    calendar: BusinessCalendar | None,
    elapsed_seconds: int,
    target_seconds: int,
    as_of: datetime | None,
    at: datetime,
) -> LiveValues:
    """Elapsed, remaining (negative over target) and percent of a cycle at `at`, from its value at `as_of`.

    `calendar`: the clock's working time; None when it is not known, which leaves a running clock as of `as_of`.
    """
    elapsed, live = elapsed_seconds, False
    if as_of is not None and as_of <= at:
        if state in NOT_GROWING:
            live = True
        elif state == "running" and calendar is not None:
            # DESIGN 4.10: elapsed counts whole seconds from whole-second boundaries, as the engine floors it, so
            # an `as_of` with a fraction (a `recalculated` stamped when the engine noticed) gains no extra second.
            elapsed += calendar.business_seconds_between_epochs(
                math.floor(as_of.timestamp()), math.floor(at.timestamp())
            )
            live = True
    percent = round(100 * elapsed / target_seconds, 2) if target_seconds > 0 else None
    return LiveValues(elapsed, target_seconds - elapsed, percent, live)


def live_clock(row: ClockRow, at: datetime, calendars: Calendars) -> ClockRow:
    working = working_calendar(row.calendar, row.policy_version, calendars)
    values = live_values(row.state, working, row.elapsed_seconds, row.target_seconds, row.as_of, at)
    return replace(
        row,
        elapsed_seconds=values.elapsed_seconds,
        remaining_seconds=values.remaining_seconds,
        percent=values.percent,
        live=values.live,
    )


def live_breach(row: BreachedCycle, at: datetime, calendars: Calendars) -> BreachedCycle:
    """An open breach at `at`: its elapsed time and how far over target it is by then."""
    working = working_calendar(row.calendar, row.policy_version, calendars)
    values = live_values(row.state, working, row.elapsed_seconds, row.target_seconds, row.as_of, at)
    over = max(values.elapsed_seconds - row.target_seconds, 0)
    over_percent = round(100 * over / row.target_seconds, 2) if row.target_seconds > 0 else None
    return replace(
        row,
        elapsed_seconds=values.elapsed_seconds,
        over_target_seconds=over,
        over_target_percent=over_percent,
        live=values.live,
    )
