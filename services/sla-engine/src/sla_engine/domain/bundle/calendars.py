"""The `calendars` section: weekly hours, holidays, extra holidays and make-up days, validated."""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import cache
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holiday_tables

from sla_engine.domain.bundle.source import Checker, join_path
from slm_shared.business_time import DAY_SECONDS, TWENTY_FOUR_SEVEN, WEEKDAYS, CalendarConfig, DayHours

_DAY_KEY = re.compile(r"^([a-z]{3})(?:-([a-z]{3}))?$")
_INTERVAL = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@cache
def _supported_countries() -> dict[str, list[str]]:
    return holiday_tables.list_supported_countries(include_aliases=True)


def _valid_zone(key: str) -> bool:
    try:
        ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


# -- calendars -----------------------------------------------------------------------------------------


def parse_calendar(check: Checker, raw: Any, path: str) -> CalendarConfig | None:
    keys = ("name", "timezone", "hours", "holidays", "extra_holidays", "extra_workdays")
    if isinstance(raw, dict) and raw.get("name") == TWENTY_FOUR_SEVEN.name:
        if set(raw) != {"name"}:
            check.error(join_path(path, "name"), "24x7 is built in (every second counts) and cannot be redefined")
        return None
    value = check.mapping(raw, path, keys, required=("name", "timezone", "hours"))
    if value is None:
        return None
    name = check.text(value["name"], join_path(path, "name")) if value.get("name") is not None else None
    zone = value.get("timezone")
    if zone is not None and check.text(zone, join_path(path, "timezone")) is not None and not _valid_zone(zone):
        check.error(join_path(path, "timezone"), f"unknown time zone {zone!r}; use an IANA name such as Asia/Shanghai")
        zone = None
    hours = _parse_hours(check, value["hours"], join_path(path, "hours")) if value.get("hours") is not None else None
    country, subdivision = _parse_holidays(check, value.get("holidays"), join_path(path, "holidays"))
    extra_holidays = _parse_extra_holidays(check, value.get("extra_holidays"), join_path(path, "extra_holidays"))
    extra_workdays = _parse_extra_workdays(
        check, value.get("extra_workdays"), join_path(path, "extra_workdays"), hours, extra_holidays
    )
    if hours is not None and not any(hours) and not extra_workdays:
        check.error(join_path(path, "hours"), "the week has no working hours, so no deadline would ever come")
    if name is None or not isinstance(zone, str) or hours is None:
        return None
    return CalendarConfig(
        name=name,
        timezone=zone,
        hours=hours,
        holidays_country=country,
        holidays_subdivision=subdivision,
        extra_holidays=extra_holidays,
        extra_workdays=extra_workdays,
    )


def _parse_hours(check: Checker, raw: Any, path: str) -> tuple[DayHours, ...] | None:
    value = check.mapping(raw, path, (), extra=lambda key: True)
    if value is None:
        return None
    week: list[DayHours | None] = [None] * 7
    given_by: dict[int, str] = {}
    valid = True
    for key, intervals in value.items():
        key_path = join_path(path, key)
        days = _weekdays(key) if isinstance(key, str) else None
        if days is None:
            check.error(key_path, f"{key!r} is not a weekday or range of weekdays such as mon-fri or sat")
            valid = False
            continue
        parsed = _parse_intervals(check, intervals, key_path)
        if parsed is None:
            valid = False
        for day in days:
            if day in given_by:
                check.error(key_path, f"{WEEKDAYS[day]} is already given by hours.{given_by[day]}")
                valid = False
            given_by.setdefault(day, key)
            week[day] = parsed
    if not valid:
        return None
    return tuple(day or () for day in week)


def _weekdays(key: str) -> list[int] | None:
    match = _DAY_KEY.match(key.strip().lower())
    if match is None or match.group(1) not in WEEKDAYS or (match.group(2) or "mon") not in WEEKDAYS:
        return None
    first = WEEKDAYS.index(match.group(1))
    last = WEEKDAYS.index(match.group(2)) if match.group(2) else first
    # A range may wrap around the week end, as in sun-thu.
    return [(first + offset) % 7 for offset in range((last - first) % 7 + 1)]


def _parse_intervals(check: Checker, raw: Any, path: str) -> DayHours | None:
    items = [raw] if isinstance(raw, str) else check.sequence(raw, path)
    if not isinstance(raw, str | list) and raw is not None:
        return None
    parsed: list[tuple[int, int, str]] = []
    valid = True
    for position, item in enumerate(items):
        item_path = path if isinstance(raw, str) else join_path(path, position)
        interval = _interval(item)
        if interval is None:
            check.error(
                item_path,
                f"{item!r} is not a wall-clock interval such as 09:00-12:00 (end may be 24:00, "
                "and must be after the start)",
            )
            valid = False
            continue
        parsed.append((*interval, item_path))
    parsed.sort()
    for (_, previous_end, _), (start, _, item_path) in pairwise(parsed):
        if start < previous_end:
            check.error(item_path, "overlaps another interval of the same day")
            valid = False
    return tuple((start, end) for start, end, _ in parsed) if valid else None


def _interval(item: Any) -> tuple[int, int] | None:
    match = _INTERVAL.match(item.strip()) if isinstance(item, str) else None
    if match is None:
        return None
    start_h, start_m, end_h, end_m = (int(part) for part in match.groups())
    if start_h > 23 or start_m > 59 or end_m > 59 or end_h > 24 or (end_h == 24 and end_m):
        return None
    start, end = start_h * 3600 + start_m * 60, end_h * 3600 + end_m * 60
    return (start, end) if start < end <= DAY_SECONDS else None


def _parse_holidays(check: Checker, raw: Any, path: str) -> tuple[str | None, str | None]:
    if raw is None:
        return None, None
    value = check.mapping(raw, path, ("country", "subdivision"), required=("country",))
    if value is None or value.get("country") is None:
        return None, None
    country = check.text(value["country"], join_path(path, "country"))
    supported = _supported_countries()
    if country is None:
        return None, None
    if country not in supported:
        check.error(join_path(path, "country"), f"unknown holiday country {country!r}; use an ISO 3166 code such as CN")
        return None, None
    subdivision = value.get("subdivision")
    if subdivision is None:
        return country, None
    if check.text(subdivision, join_path(path, "subdivision")) is None:
        return None, None
    if subdivision not in supported[country]:
        known = ", ".join(supported[country][:12]) or "none"
        check.error(
            join_path(path, "subdivision"), f"unknown subdivision {subdivision!r} of {country} (known: {known})"
        )
        return None, None
    return country, subdivision


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return None
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.match(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _parse_extra_holidays(check: Checker, raw: Any, path: str) -> frozenset[date]:
    days: set[date] = set()
    for position, item in enumerate(check.sequence(raw, path)):
        day = _as_date(item)
        if day is None:
            check.error(join_path(path, position), f"{item!r} is not a date (YYYY-MM-DD)")
        else:
            days.add(day)
    return frozenset(days)


def _parse_extra_workdays(
    check: Checker, raw: Any, path: str, hours: tuple[DayHours, ...] | None, extra_holidays: frozenset[date]
) -> tuple[tuple[date, int], ...]:
    if raw is None:
        return ()
    value = check.mapping(raw, path, (), extra=lambda key: True)
    if value is None:
        return ()
    workdays: dict[date, int] = {}
    for key, weekday in value.items():
        key_path = join_path(path, key)
        day = _as_date(key)
        if day is None:
            check.error(key_path, f"{key!r} is not a date (YYYY-MM-DD)")
            continue
        if not isinstance(weekday, str) or weekday.strip().lower() not in WEEKDAYS:
            check.error(key_path, f"{weekday!r} is not a weekday; expected one of: {', '.join(WEEKDAYS)}")
            continue
        number = WEEKDAYS.index(weekday.strip().lower())
        if day in extra_holidays:
            check.error(key_path, f"{day} is also in extra_holidays: a date is either worked or a holiday")
            continue
        if hours is not None and not hours[number]:
            check.error(key_path, f"{weekday} has no working hours in this calendar, so {day} would not be worked")
            continue
        workdays[day] = number
    return tuple(sorted(workdays.items()))
