"""The notification calendar: when a message may go out (working intervals per weekday in one time zone).

Reporting's own, deliberately small: working intervals per weekday in one IANA time zone, no holidays. It decides
only *when a message may go out* (a P4 warning at 02:00 waits for the next working minute); the SLA clock's
business time stays the sla-engine's, which reporting never imports.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from reporting.domain.notification_fields import storable
from slm_shared.business_time import WEEKDAYS


class NotificationCalendar(BaseModel):
    """When messages may go out: `hours` per weekday (`mon-fri`, `sat`, `mon,wed`) as `HH:MM-HH:MM` wall-clock
    intervals [start, end) in `timezone`. Outside them a message is deferred to the next working minute."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: Annotated[str, Field(max_length=64), AfterValidator(storable)] = "UTC"
    hours: dict[Annotated[str, Field(max_length=32)], Annotated[list[str], Field(max_length=12)]] = Field(
        min_length=1, max_length=7
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown IANA time zone {value!r}") from error
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for days, intervals in value.items():
            _weekdays(days)
            for interval in intervals:
                _interval(interval)
        return value

    def intervals_on(self, weekday: int) -> list[tuple[time, time | None]]:
        """The working intervals of a weekday (0 = Monday); an end of None is midnight (`24:00`)."""
        found: list[tuple[time, time | None]] = []
        for days, intervals in self.hours.items():
            if weekday in _weekdays(days):
                found.extend(_interval(text) for text in intervals)
        return sorted(found, key=lambda pair: pair[0])

    def next_working_instant(self, at: datetime) -> datetime:
        """`at` itself when it falls in working time, else the start of the next working interval (the next
        working minute: intervals start on whole minutes). Wall-clock times are converted with `zoneinfo`
        (fold 0), as the sla-engine's calendars are."""
        zone = ZoneInfo(self.timezone)
        local = at.astimezone(zone)
        for offset in range(8):  # a week and a day: every weekday seen at least once
            day = local.date() + timedelta(days=offset)
            for start, end in self.intervals_on(day.weekday()):
                begins = datetime.combine(day, start, zone)
                ends = (
                    datetime.combine(day + timedelta(days=1), time(0), zone)
                    if end is None
                    else datetime.combine(day, end, zone)
                )
                if at < begins:
                    return begins.astimezone(at.tzinfo)
                if at < ends:
                    return at
        raise ValueError("the notification calendar has no working time")  # refused at validation already


def _weekdays(text: str) -> set[int]:
    days: set[int] = set()
    for part in text.lower().split(","):
        part = part.strip()
        first, _, last = part.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ValueError(f"weekdays {text!r}: e.g. mon-fri, sat, mon,wed")
        low, high = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        if high < low:
            raise ValueError(f"weekdays {text!r}: a range runs forward (mon-fri)")
        days.update(range(low, high + 1))
    return days


def _interval(text: str) -> tuple[time, time | None]:
    found = re.fullmatch(r"(\d\d):(\d\d)-(\d\d):(\d\d)", text.strip())
    if not found:
        raise ValueError(f"interval {text!r}: HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError(f"interval {text!r}: not a time of day")
    start, end = time(h1, m1), (None if h2 == 24 else time(h2, m2))
    if end is not None and end <= start:
        raise ValueError(f"interval {text!r}: ends after it starts (24:00 for midnight)")
    return start, end
