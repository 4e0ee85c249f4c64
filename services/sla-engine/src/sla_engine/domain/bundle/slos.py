"""The `slos:` section: each entry validated into an `SloDefinition` (rules in `sla_engine.domain.slo.definition`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sla_engine.domain.bundle.model import SloConfig, format_duration, parse_duration
from sla_engine.domain.bundle.source import Checker, join_path, kind_of
from sla_engine.domain.slo.definition import (
    BUDGETING,
    CALENDAR_UNITS,
    HUNDRED,
    THRESHOLD_OPERATORS,
    AvailabilitySli,
    CalendarWindow,
    RatioSli,
    RollingWindow,
    Sli,
    SloDefinition,
    ThresholdSli,
    TicketSlaSli,
    Window,
)
from sla_engine.domain.slo.maintenance import RecurrenceError, RecurringMaintenance

DAY_SECONDS = 86_400
# Bounds on new bundles (`bounded`): longer durations overflow date arithmetic (`rolling: 3000000d`) or make
# every evaluation read more minutes than any agreement needs.
MAX_DURATION_SECONDS = 400 * DAY_SECONDS
_LONGEST_LOOKBACK_SECONDS = 3 * DAY_SECONDS
_LONGEST_CALENDAR_SECONDS = {"week": 7 * DAY_SECONDS, "month": 31 * DAY_SECONDS, "quarter": 92 * DAY_SECONDS}


def parse_slo_definition(
    check: Checker, raw: Any, path: str, calendars: set[str] | None = None, *, bounded: bool = True
) -> SloDefinition | None:
    """Validate one `slos:` entry, reporting every problem with its path; None when it is invalid.

    `bounded` (new bundles) also enforces the bounds: durations at most `MAX_DURATION_SECONDS` (400d), and each
    recurring maintenance rule occurring within 5 years and at most 10,000 times per evaluated range
    (`RecurringMaintenance.check_bounds`). A stored bundle is read back without them (`bounded=False`), so one
    applied before a bound was added keeps working; its failures are isolated per SLO by the evaluator."""
    if not isinstance(raw, dict):
        check.error(path, f"must be a mapping, not {kind_of(raw)}")
        return None
    before = len(check.issues)
    slo_id = check.text(raw.get("id"), join_path(path, "id"))
    service = check.text(raw.get("service"), join_path(path, "service"))
    value = check.mapping(
        raw,
        path,
        (
            "id",
            "service",
            "sli",
            "objective",
            "window",
            "budgeting",
            "timeslice_target",
            "timeslice",
            "timeslice_min_events",
            "no_data_after",
            "calendar",
        ),
        required=("sli", "objective", "window"),
    )
    if value is None:
        return None
    sli = _parse_sli(check, value.get("sli"), join_path(path, "sli"), calendars, bounded) if "sli" in value else None
    objective = (
        _percent(check, value.get("objective"), join_path(path, "objective"))
        if value.get("objective") is not None
        else None
    )
    window = (
        _parse_window(check, value.get("window"), join_path(path, "window"), bounded) if "window" in value else None
    )
    budgeting = value.get("budgeting", "occurrences")
    if budgeting not in BUDGETING:
        check.error(join_path(path, "budgeting"), f"{budgeting!r} is not one of: {', '.join(BUDGETING)}")
    timeslice_target = None
    if value.get("timeslice_target") is not None:
        timeslice_target = _percent(check, value["timeslice_target"], join_path(path, "timeslice_target"))
    elif budgeting == "timeslices":
        check.error(join_path(path, "timeslice_target"), "is required with budgeting: timeslices")
    slice_seconds = _timeslice(check, value, path, budgeting, window)
    min_events = value.get("timeslice_min_events", 1)
    if isinstance(min_events, bool) or not isinstance(min_events, int) or min_events < 1:
        check.error(join_path(path, "timeslice_min_events"), f"{min_events!r} is not a whole number >= 1")
    no_data_after = 0 if isinstance(sli, TicketSlaSli) else 3_600
    if "no_data_after" in value:
        no_data_after = _duration(check, value["no_data_after"], join_path(path, "no_data_after"), bounded) or 0
    calendar = value.get("calendar")
    if calendar is not None:
        # The earlier spelling of `sli.calendar`, still read so stored bundles keep working.
        if not isinstance(sli, AvailabilitySli) and sli is not None:
            check.error(join_path(path, "calendar"), "service hours apply to availability SLIs only")
        elif isinstance(sli, AvailabilitySli) and sli.calendar is not None:
            check.error(join_path(path, "calendar"), "give service hours once, as sli.calendar")
        else:
            _calendar_name(check, calendar, join_path(path, "calendar"), calendars)
    if (
        len(check.issues) > before
        or slo_id is None
        or service is None
        or sli is None
        or objective is None
        or window is None
        or budgeting not in BUDGETING
        or slice_seconds is None
    ):
        return None
    if bounded and isinstance(sli, AvailabilitySli) and window is not None:
        _check_recurrences(check, sli, window, join_path(join_path(path, "sli"), "maintenance"))
    if len(check.issues) > before:
        return None
    if isinstance(sli, AvailabilitySli) and isinstance(calendar, str):
        sli = replace(sli, calendar=calendar)
    return SloDefinition(
        id=slo_id,
        service=service,
        sli=sli,
        objective=objective,
        window=window,
        budgeting=budgeting,
        timeslice_target=timeslice_target,
        timeslice_min_events=min_events,
        no_data_after_seconds=no_data_after,
        timeslice_seconds=slice_seconds,
    )


def _check_recurrences(check: Checker, sli: AvailabilitySli, window: Window, path: str) -> None:
    """Each recurring window must occur soon enough and not too often for one evaluation to expand."""
    span = window.seconds if isinstance(window, RollingWindow) else _LONGEST_CALENDAR_SECONDS[window.unit]
    for position, schedule in enumerate(sli.maintenance):
        try:
            schedule.check_bounds(span + _LONGEST_LOOKBACK_SECONDS)
        except RecurrenceError as error:
            check.error(join_path(join_path(path, position), "rrule"), str(error))


def _calendar_name(check: Checker, raw: Any, path: str, calendars: set[str] | None) -> str | None:
    """A calendar name; checked against the bundle's calendars when they are known (at apply time)."""
    name = check.text(raw, path)
    if name is not None and calendars is not None and name not in calendars:
        check.error(path, f"unknown calendar {name!r}; define it under calendars")
        return None
    return name


def _timeslice(check: Checker, value: dict[Any, Any], path: str, budgeting: Any, window: Window | None) -> int | None:
    """Seconds per slice: whole minutes dividing a day, and a rolling window must hold whole slices."""
    if "timeslice" not in value:
        return 60
    slice_path = join_path(path, "timeslice")
    if budgeting not in ("timeslices", "ratio_timeslices"):
        check.error(slice_path, "applies to budgeting: timeslices or ratio_timeslices only")
        return None
    seconds = _duration(check, value["timeslice"], slice_path)
    if seconds is None:
        return None
    if seconds % 60 or DAY_SECONDS % seconds:
        check.error(slice_path, f"{value['timeslice']!r} is not whole minutes dividing a day (e.g. 1m, 5m, 1h, 1d)")
        return None
    if isinstance(window, RollingWindow) and window.seconds % seconds:
        check.error(
            slice_path,
            f"the rolling window of {format_duration(window.seconds)} is not a whole number "
            f"of {value['timeslice']} slices",
        )
        return None
    return seconds


def slo_definition(config: SloConfig) -> SloDefinition:
    """The definition of a stored, already validated entry; raises ValueError if it no longer validates."""
    check = Checker({}, [])
    definition = parse_slo_definition(check, dict(config.raw), "slo", bounded=False)
    if definition is None:
        raise ValueError("; ".join(f"{issue.path}: {issue.message}" for issue in check.issues))
    return definition


def _parse_sli(check: Checker, raw: Any, path: str, calendars: set[str] | None, bounded: bool) -> Sli | None:
    if not isinstance(raw, dict):
        check.error(path, f"must be a mapping, not {kind_of(raw)}")
        return None
    kind = raw.get("type")
    if kind == "availability":
        value = check.mapping(raw, path, ("type", "degraded_weight", "calendar", "maintenance"))
        if value is None:
            return None
        before = len(check.issues)
        weight = _decimal(check, value.get("degraded_weight", 0), join_path(path, "degraded_weight"))
        if weight is not None and not Decimal(0) <= weight <= Decimal(1):
            check.error(join_path(path, "degraded_weight"), f"{weight} is not between 0 and 1")
        calendar = (
            _calendar_name(check, value["calendar"], join_path(path, "calendar"), calendars)
            if value.get("calendar") is not None
            else None
        )
        schedules = [
            _recurring(check, item, join_path(join_path(path, "maintenance"), position), bounded)
            for position, item in enumerate(check.sequence(value.get("maintenance"), join_path(path, "maintenance")))
        ]
        if weight is None or len(check.issues) > before:
            return None
        return AvailabilitySli(
            degraded_weight=weight, calendar=calendar, maintenance=tuple(item for item in schedules if item is not None)
        )
    if kind == "ratio":
        value = check.mapping(raw, path, ("type", "sli"), required=("sli",))
        name = check.text(value.get("sli"), join_path(path, "sli")) if value and value.get("sli") is not None else None
        return RatioSli(sli=name) if name is not None else None
    if kind == "threshold":
        value = check.mapping(raw, path, ("type", "sli", "op", "value"), required=("sli", "op", "value"))
        if value is None:
            return None
        name = check.text(value.get("sli"), join_path(path, "sli")) if value.get("sli") is not None else None
        operator = value.get("op")
        if operator is not None and operator not in THRESHOLD_OPERATORS:
            check.error(join_path(path, "op"), f"{operator!r} is not one of: {', '.join(THRESHOLD_OPERATORS)}")
        threshold = (
            _decimal(check, value["value"], join_path(path, "value")) if value.get("value") is not None else None
        )
        for op in THRESHOLD_OPERATORS:
            if name is not None and threshold is not None and operator == op:
                return ThresholdSli(sli=name, operator=op, threshold=threshold)
        return None
    if kind == "ticket_sla":
        value = check.mapping(raw, path, ("type", "policy", "metric", "priorities"), required=("policy", "metric"))
        if value is None:
            return None
        policy = check.text(value.get("policy"), join_path(path, "policy")) if value.get("policy") is not None else None
        metric = check.text(value.get("metric"), join_path(path, "metric")) if value.get("metric") is not None else None
        priorities = [
            check.text(item, join_path(join_path(path, "priorities"), position))
            for position, item in enumerate(check.sequence(value.get("priorities"), join_path(path, "priorities")))
        ]
        if policy is None or metric is None or None in priorities:
            return None
        return TicketSlaSli(policy=policy, metric=metric, priorities=tuple(p for p in priorities if p is not None))
    check.error(
        join_path(path, "type"),
        f"{kind!r} is not an SLI type; expected one of: availability, ratio, threshold, ticket_sla",
    )
    return None


def _parse_window(check: Checker, raw: Any, path: str, bounded: bool) -> Window | None:
    if not isinstance(raw, dict):
        check.error(path, f"must be a mapping, not {kind_of(raw)}")
        return None
    if "rolling" in raw:
        value = check.mapping(raw, path, ("rolling",))
        seconds = _duration(check, value.get("rolling") if value else None, join_path(path, "rolling"), bounded)
        return RollingWindow(seconds) if seconds is not None else None
    if "calendar" in raw:
        value = check.mapping(raw, path, ("calendar", "timezone"))
        if value is None:
            return None
        unit = value.get("calendar")
        zone = value.get("timezone", "UTC")
        valid = True
        if unit not in CALENDAR_UNITS:
            check.error(join_path(path, "calendar"), f"{unit!r} is not one of: {', '.join(CALENDAR_UNITS)}")
            valid = False
        try:
            ZoneInfo(zone) if isinstance(zone, str) else None
        except (ZoneInfoNotFoundError, ValueError):
            valid = False
            check.error(join_path(path, "timezone"), f"{zone!r} is not an IANA time zone")
        if not isinstance(zone, str):
            check.error(join_path(path, "timezone"), f"must be a non-empty string, not {kind_of(zone)}")
            valid = False
        return CalendarWindow(unit=unit, timezone=zone) if valid and unit in CALENDAR_UNITS else None
    check.error(path, "expected {rolling: <duration>} or {calendar: week|month|quarter, timezone: <IANA zone>}")
    return None


def _recurring(check: Checker, raw: Any, path: str, bounded: bool) -> RecurringMaintenance | None:
    """One recurring maintenance window: `{rrule, dtstart, duration, timezone}` (rules in domain.slo.maintenance)."""
    value = check.mapping(
        raw, path, ("rrule", "dtstart", "duration", "timezone"), required=("rrule", "dtstart", "duration")
    )
    if value is None:
        return None
    before = len(check.issues)
    rule = check.text(value.get("rrule"), join_path(path, "rrule")) if value.get("rrule") is not None else None
    duration = (
        _duration(check, value["duration"], join_path(path, "duration"), bounded)
        if value.get("duration") is not None
        else None
    )
    if duration is not None and duration % 60:
        check.error(join_path(path, "duration"), f"{value['duration']!r} is not whole minutes")
    zone = _zone(check, value.get("timezone", "UTC"), join_path(path, "timezone"))
    start = (
        _local_time(check, value["dtstart"], join_path(path, "dtstart")) if value.get("dtstart") is not None else None
    )
    if len(check.issues) > before or rule is None or duration is None or zone is None or start is None:
        return None
    try:
        return RecurringMaintenance(rrule=rule, dtstart=start, duration_seconds=duration, timezone=zone)
    except RecurrenceError as error:
        check.error(join_path(path, "dtstart" if str(error).startswith("dtstart") else "rrule"), str(error))
        return None


def _local_time(check: Checker, raw: Any, path: str) -> datetime | None:
    if isinstance(raw, datetime):
        return raw
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw.strip())
        except ValueError:
            pass
    check.error(path, f"{raw!r} is not a local date and time such as 2026-01-04T02:00")
    return None


def _zone(check: Checker, raw: Any, path: str) -> str | None:
    if not isinstance(raw, str) or not raw:
        check.error(path, f"must be a non-empty string, not {kind_of(raw)}")
        return None
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        check.error(path, f"{raw!r} is not an IANA time zone")
        return None
    return raw


def _decimal(check: Checker, raw: Any, path: str) -> Decimal | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        check.error(path, f"must be a number, not {kind_of(raw)}")
        return None
    try:
        # repr of a float is its shortest round-tripping text, so 99.9 stays exactly 99.9.
        number = Decimal(repr(raw)) if isinstance(raw, float) else Decimal(str(raw))
    except InvalidOperation:
        check.error(path, f"{raw!r} is not a number")
        return None
    if not number.is_finite():
        check.error(path, f"{raw!r} is not a finite number")
        return None
    return number


def _percent(check: Checker, raw: Any, path: str) -> Decimal | None:
    number = _decimal(check, raw, path)
    if number is not None and not Decimal(0) < number < HUNDRED:
        check.error(path, f"{number} is not a percent strictly between 0 and 100")
        return None
    return number


def _duration(check: Checker, raw: Any, path: str, bounded: bool = True) -> int | None:
    if not isinstance(raw, str):
        check.error(path, f"{raw!r} is not a duration: give a unit, e.g. 28d, 6h, 30m")
        return None
    try:
        seconds = parse_duration(raw)
    except ValueError as error:
        check.error(path, str(error))
        return None
    if bounded and seconds > MAX_DURATION_SECONDS:
        check.error(path, f"{raw!r} is longer than the longest allowed, {format_duration(MAX_DURATION_SECONDS)}")
        return None
    return seconds
