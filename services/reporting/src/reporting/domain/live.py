"""Running clocks at the report's instant: the read model holds each cycle as of its last transition, and a
clock that has run for hours since then must not be shown as it stood then.

Elapsed time is business time of the clock's calendar (DESIGN section 5). Reporting receives the calendar's
name with each clock event, not its working hours (the sla-engine owns calendars), so it brings a value
forward exactly only where business time is wall-clock time: the built-in `24x7` calendar. A paused or
stopped cycle does not grow, so its stored value is already exact at any later instant. A running cycle of a
business calendar keeps its stored value, marked `live = False` with `as_of`, and the page says so; its
`due_at` (computed by the engine with the calendar) stays the exact deadline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime

from reporting.domain.model import BreachedCycle, ClockRow

WALL_CLOCK_CALENDAR = "24x7"
NOT_GROWING = frozenset({"paused", "met", "breached", "cancelled"})


@dataclass(frozen=True)
class LiveValues:
    elapsed_seconds: int
    remaining_seconds: int
    percent: float | None
    live: bool  # True: the values hold at the instant asked for; False: they hold at `as_of`


def live_values(state: str, calendar: str, elapsed_seconds: int, target_seconds: int, as_of: datetime | None,
                at: datetime) -> LiveValues:
    """Elapsed, remaining (negative over target) and percent of a cycle at `at`, from its value at `as_of`."""
    elapsed, live = elapsed_seconds, False
    if as_of is not None and as_of <= at:
        if state in NOT_GROWING:
            live = True
        elif state == "running" and calendar == WALL_CLOCK_CALENDAR:
            # DESIGN 4.10: elapsed counts whole seconds from whole-second boundaries, as the engine floors it, so
            # an `as_of` with a fraction (a `recalculated` stamped when the engine noticed) gains no extra second.
            elapsed += math.floor(at.timestamp()) - math.floor(as_of.timestamp())
            live = True
    percent = round(100 * elapsed / target_seconds, 2) if target_seconds > 0 else None
    return LiveValues(elapsed, target_seconds - elapsed, percent, live)


def live_clock(row: ClockRow, at: datetime) -> ClockRow:
    values = live_values(row.state, row.calendar, row.elapsed_seconds, row.target_seconds, row.as_of, at)
    return replace(row, elapsed_seconds=values.elapsed_seconds, remaining_seconds=values.remaining_seconds,
                   percent=values.percent, live=values.live)


def live_breach(row: BreachedCycle, at: datetime) -> BreachedCycle:
    """An open breach at `at`: its elapsed time and how far over target it is by then."""
    values = live_values(row.state, row.calendar, row.elapsed_seconds, row.target_seconds, row.as_of, at)
    over = max(values.elapsed_seconds - row.target_seconds, 0)
    over_percent = round(100 * over / row.target_seconds, 2) if row.target_seconds > 0 else None
    return replace(row, elapsed_seconds=values.elapsed_seconds, over_target_seconds=over,
                   over_target_percent=over_percent, live=values.live)
