"""SLO windows: where a window starts and ends at an instant, and the nominal length burn rates scale with.

Rules:
- A rolling window at `at` is `[at - length, at)`.
- A calendar window is the local week (Monday 00:00), month or quarter containing `at` in the window's time
  zone, converted to UTC (`fold=0`), so a 31-day month is 31 days long and a DST month loses or gains an hour.
- The nominal length used to scale burn-rate factors is the rolling length, or 7d / 30d / 90d for calendar
  windows (the Workbook's factors are stated for a 30-day window).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sla_engine.domain.slo.definition import CalendarWindow, RollingWindow, Window

_NOMINAL_DAYS = {"week": 7, "month": 30, "quarter": 90}


def window_bounds(window: Window, at: datetime) -> tuple[datetime, datetime]:
    """The window containing `at`, as UTC instants `[start, end)`."""
    if isinstance(window, RollingWindow):
        end = at.astimezone(UTC)
        return end - timedelta(seconds=window.seconds), end
    return _calendar_bounds(window, at)


def nominal_seconds(window: Window) -> int:
    if isinstance(window, RollingWindow):
        return window.seconds
    return _NOMINAL_DAYS[window.unit] * 86_400


def _calendar_bounds(window: CalendarWindow, at: datetime) -> tuple[datetime, datetime]:
    zone = ZoneInfo(window.timezone)
    local = at.astimezone(zone)
    day = local.date()
    if window.unit == "week":
        first = day - timedelta(days=day.weekday())
        following = first + timedelta(days=7)
    elif window.unit == "month":
        first = day.replace(day=1)
        following = (
            first.replace(year=first.year + 1, month=1) if first.month == 12 else first.replace(month=first.month + 1)
        )
    else:
        month = 3 * ((day.month - 1) // 3) + 1
        first = day.replace(month=month, day=1)
        following = first.replace(year=first.year + 1, month=1) if month == 10 else first.replace(month=month + 3)
    start = datetime(first.year, first.month, first.day, tzinfo=zone).astimezone(UTC)
    end = datetime(following.year, following.month, following.day, tzinfo=zone).astimezone(UTC)
    return start, end
