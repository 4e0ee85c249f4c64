"""Plain-language explanations of a clock, written for a service-desk manager.

Times are shown in the calendar's own zone (the zone its working hours are written in), durations in
business hours and minutes: `1d` of target is shown as `24h` because it means 24 working hours.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sla_engine.domain.results import ClockState, Segment
    from slm_shared.business_time import BusinessCalendar, NonWorkingSpan


def business_duration(seconds: int) -> str:
    """`34200` -> `9h30m`; negative values keep their sign."""
    sign = "-" if seconds < 0 else ""
    hours, rest = divmod(abs(seconds), 3600)
    minutes, rest_seconds = divmod(rest, 60)
    text = (
        (f"{hours}h" if hours else "")
        + (f"{minutes}m" if minutes else "")
        + (f"{rest_seconds}s" if rest_seconds else "")
    )
    return sign + (text or "0s")


_WEEKDAY_ABBREVIATIONS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def local_time(instant: datetime, calendar: BusinessCalendar) -> str:
    """`Mon 2026-11-09 16:00 +08:00`, in the calendar's zone (seconds only when there are any)."""
    local = instant.astimezone(calendar.zone)
    offset = local.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    offset_hours, offset_minutes = divmod(abs(int(offset.total_seconds())) // 60, 60)
    seconds = f":{local.second:02d}" if local.second else ""
    # Formatted by hand: strftime was most of an evaluation's cost.
    return (
        f"{_WEEKDAY_ABBREVIATIONS[local.weekday()]} {local.year:04d}-{local.month:02d}-{local.day:02d} "
        f"{local.hour:02d}:{local.minute:02d}{seconds} {sign}{offset_hours:02d}:{offset_minutes:02d}"
    )


def local_span(start: datetime, end: datetime, calendar: BusinessCalendar) -> str:
    first, last = local_time(start, calendar), local_time(end, calendar)
    if first[:14] == last[:14]:  # same local date ("Mon 2026-11-09"): show the end's time only
        last = last[15:]
    return f"{first} to {last}"


def _skipped_text(spans: Sequence[NonWorkingSpan], calendar: BusinessCalendar) -> str:
    """Days off by name and date range; the hours outside the working day as a total."""
    parts: list[str] = []
    off_hours = sum(span.seconds for span in spans if span.reason == "outside working hours")
    for span in spans:
        if span.reason == "outside working hours":
            continue
        first = span.start.astimezone(calendar.zone).date()
        last = (span.end.astimezone(calendar.zone) - timedelta(seconds=1)).date()
        days = first.isoformat() if first == last else f"{first.isoformat()} to {last.isoformat()}"
        parts.append(f"{span.reason} ({days})")
    if off_hours:
        parts.append(f"{business_duration(off_hours)} outside working hours")
    return ", ".join(parts)


def _segment_text(segment: Segment, calendar: BusinessCalendar) -> str:
    span = local_span(segment.start, segment.end, calendar)
    if segment.state != "running":
        return f"{segment.state} {span} ({segment.condition})"
    text = f"{business_duration(segment.business_seconds)} counted {span} ({segment.condition})"
    skipped = _skipped_text(segment.non_working, calendar)
    return f"{text}, not counting {skipped}" if skipped else text


def deadline_reason(
    *,
    calendar: BusinessCalendar,
    priority: str,
    target_seconds: int,
    elapsed_seconds: int,
    state: ClockState,
    breached_at: datetime | None,
    stopped_at: datetime | None,
    due_at: datetime | None,
    segments: Sequence[Segment],
    stop_reason: str | None = None,
) -> str:
    """Why the clock stands where it does: target, what counted and what did not, and the deadline."""
    where = (
        "around the clock (calendar 24x7)"
        if calendar.is_continuous
        else f"of business time on calendar {calendar.name} ({calendar.timezone})"
    )
    sentences = [f"Target for {priority}: {business_duration(target_seconds)} {where}."]
    if segments:
        sentences.append("Timeline: " + "; ".join(_segment_text(s, calendar) for s in segments) + ".")
    used = business_duration(elapsed_seconds)
    because = f" ({stop_reason})" if stop_reason else ""
    left = business_duration(target_seconds - elapsed_seconds)
    if breached_at is not None and state != "cancelled":
        sentences.append(
            f"Breached at {local_time(breached_at, calendar)}, when elapsed time reached the target in force."
        )
    if state == "running" and due_at is not None:
        sentences.append(f"{used} used, {left} left: due {local_time(due_at, calendar)} if it keeps running.")
    elif state == "running":
        sentences.append(
            f"{used} used, {business_duration(elapsed_seconds - target_seconds)} over the target and still running."
        )
    elif state == "paused":
        sentences.append(f"{used} used, {left} left; paused, so the deadline moves out until the clock resumes.")
    elif state == "met" and stopped_at is not None:
        sentences.append(f"Stopped {local_time(stopped_at, calendar)}{because} after {used}: met.")
    elif state == "breached" and stopped_at is not None:
        over = (
            f"{business_duration(elapsed_seconds - target_seconds)} over"
            if elapsed_seconds > target_seconds
            else "the breach under an earlier, tighter target stays"
        )
        sentences.append(f"Stopped {local_time(stopped_at, calendar)}{because} after {used} ({over}): breached.")
    elif state == "cancelled" and stopped_at is not None:
        sentences.append(
            f"Cancelled {local_time(stopped_at, calendar)}{because} after {used}: counts neither as met nor breached."
        )
    return " ".join(sentences)
