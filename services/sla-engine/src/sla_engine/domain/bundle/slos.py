"""The `slos:` section: each entry validated into an `SloDefinition` (rules in `sla_engine.domain.slo.definition`)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sla_engine.domain.bundle.model import SloConfig, parse_duration
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


def parse_slo_definition(check: Checker, raw: Any, path: str,
                         calendars: set[str] | None = None) -> SloDefinition | None:
    """Validate one `slos:` entry, reporting every problem with its path; None when it is invalid."""
    if not isinstance(raw, dict):
        check.error(path, f"must be a mapping, not {kind_of(raw)}")
        return None
    before = len(check.issues)
    slo_id = check.text(raw.get("id"), join_path(path, "id"))
    service = check.text(raw.get("service"), join_path(path, "service"))
    value = check.mapping(raw, path, ("id", "service", "sli", "objective", "window", "budgeting",
                                      "timeslice_target", "timeslice_min_events", "no_data_after", "calendar"),
                          required=("sli", "objective", "window"))
    if value is None:
        return None
    sli = _parse_sli(check, value.get("sli"), join_path(path, "sli")) if "sli" in value else None
    objective = _percent(check, value.get("objective"), join_path(path, "objective")) \
        if value.get("objective") is not None else None
    window = _parse_window(check, value.get("window"), join_path(path, "window")) if "window" in value else None
    budgeting = value.get("budgeting", "occurrences")
    if budgeting not in BUDGETING:
        check.error(join_path(path, "budgeting"), f"{budgeting!r} is not one of: {', '.join(BUDGETING)}")
    timeslice_target = None
    if value.get("timeslice_target") is not None:
        timeslice_target = _percent(check, value["timeslice_target"], join_path(path, "timeslice_target"))
    elif budgeting == "timeslices":
        check.error(join_path(path, "timeslice_target"), "is required with budgeting: timeslices")
    min_events = value.get("timeslice_min_events", 1)
    if isinstance(min_events, bool) or not isinstance(min_events, int) or min_events < 1:
        check.error(join_path(path, "timeslice_min_events"), f"{min_events!r} is not a whole number >= 1")
    no_data_after = 0 if isinstance(sli, TicketSlaSli) else 3_600
    if "no_data_after" in value:
        no_data_after = _duration(check, value["no_data_after"], join_path(path, "no_data_after")) or 0
    calendar = value.get("calendar")
    if calendar is not None:
        if not isinstance(sli, AvailabilitySli) and sli is not None:
            check.error(join_path(path, "calendar"), "service hours apply to availability SLIs only")
        elif check.text(calendar, join_path(path, "calendar")) is not None and calendars is not None \
                and calendar not in calendars:
            check.error(join_path(path, "calendar"), f"unknown calendar {calendar!r}; define it under calendars")
    if len(check.issues) > before or slo_id is None or service is None or sli is None or objective is None \
            or window is None or budgeting not in BUDGETING:
        return None
    return SloDefinition(id=slo_id, service=service, sli=sli, objective=objective, window=window,
                         budgeting=budgeting, timeslice_target=timeslice_target,
                         timeslice_min_events=min_events, no_data_after_seconds=no_data_after,
                         calendar=calendar if isinstance(calendar, str) else None)


def slo_definition(config: SloConfig) -> SloDefinition:
    """The definition of a stored, already validated entry; raises ValueError if it no longer validates."""
    check = Checker({}, [])
    definition = parse_slo_definition(check, dict(config.raw), "slo")
    if definition is None:
        raise ValueError("; ".join(f"{issue.path}: {issue.message}" for issue in check.issues))
    return definition


def _parse_sli(check: Checker, raw: Any, path: str) -> Sli | None:
    if not isinstance(raw, dict):
        check.error(path, f"must be a mapping, not {kind_of(raw)}")
        return None
    kind = raw.get("type")
    if kind == "availability":
        value = check.mapping(raw, path, ("type", "degraded_weight"))
        if value is None:
            return None
        weight = _decimal(check, value.get("degraded_weight", 0), join_path(path, "degraded_weight"))
        if weight is None:
            return None
        if not Decimal(0) <= weight <= Decimal(1):
            check.error(join_path(path, "degraded_weight"), f"{weight} is not between 0 and 1")
            return None
        return AvailabilitySli(degraded_weight=weight)
    if kind == "ratio":
        value = check.mapping(raw, path, ("type", "sli"), required=("sli",))
        name = check.text(value.get("sli"), join_path(path, "sli")) if value and value.get("sli") is not None \
            else None
        return RatioSli(sli=name) if name is not None else None
    if kind == "threshold":
        value = check.mapping(raw, path, ("type", "sli", "op", "value"), required=("sli", "op", "value"))
        if value is None:
            return None
        name = check.text(value.get("sli"), join_path(path, "sli")) if value.get("sli") is not None else None
        operator = value.get("op")
        if operator is not None and operator not in THRESHOLD_OPERATORS:
            check.error(join_path(path, "op"), f"{operator!r} is not one of: {', '.join(THRESHOLD_OPERATORS)}")
        threshold = _decimal(check, value["value"], join_path(path, "value")) if value.get("value") is not None \
            else None
        for op in THRESHOLD_OPERATORS:
            if name is not None and threshold is not None and operator == op:
                return ThresholdSli(sli=name, operator=op, threshold=threshold)
        return None
    if kind == "ticket_sla":
        value = check.mapping(raw, path, ("type", "policy", "metric", "priorities"), required=("policy", "metric"))
        if value is None:
            return None
        policy = check.text(value.get("policy"), join_path(path, "policy")) if value.get("policy") is not None \
            else None
        metric = check.text(value.get("metric"), join_path(path, "metric")) if value.get("metric") is not None \
            else None
        priorities = [check.text(item, join_path(join_path(path, "priorities"), position))
                      for position, item in enumerate(check.sequence(value.get("priorities"),
                                                                     join_path(path, "priorities")))]
        if policy is None or metric is None or None in priorities:
            return None
        return TicketSlaSli(policy=policy, metric=metric, priorities=tuple(p for p in priorities if p is not None))
    check.error(join_path(path, "type"),
                f"{kind!r} is not an SLI type; expected one of: availability, ratio, threshold, ticket_sla")
    return None


def _parse_window(check: Checker, raw: Any, path: str) -> Window | None:
    if not isinstance(raw, dict):
        check.error(path, f"must be a mapping, not {kind_of(raw)}")
        return None
    if "rolling" in raw:
        value = check.mapping(raw, path, ("rolling",))
        seconds = _duration(check, value.get("rolling") if value else None, join_path(path, "rolling"))
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


def _duration(check: Checker, raw: Any, path: str) -> int | None:
    if not isinstance(raw, str):
        check.error(path, f"{raw!r} is not a duration: give a unit, e.g. 28d, 6h, 30m")
        return None
    try:
        return parse_duration(raw)
    except ValueError as error:
        check.error(path, str(error))
        return None
