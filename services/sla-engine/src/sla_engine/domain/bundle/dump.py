"""The canonical JSON-able form of a bundle, for storage and `GET /v1/config`; it parses back equal."""

from __future__ import annotations

from typing import Any

from sla_engine.domain.bundle.model import Bundle, MetricRule, Policy, format_duration
from slm_shared.business_time import WEEKDAYS, CalendarConfig, DayHours


def dump_bundle(bundle: Bundle) -> dict[str, Any]:
    """The canonical JSON-able form (for storage and GET /v1/config); `parse_bundle` reads it back equal."""
    return {
        "calendars": [_dump_calendar(config) for config in bundle.calendars],
        "policies": [_dump_policy(policy) for policy in bundle.policies],
        "slos": [dict(slo.raw) for slo in bundle.slos],
    }


def _dump_calendar(config: CalendarConfig) -> dict[str, Any]:
    dumped: dict[str, Any] = {"name": config.name, "timezone": config.timezone, "hours": _dump_hours(config.hours)}
    if config.holidays_country is not None:
        dumped["holidays"] = {"country": config.holidays_country}
        if config.holidays_subdivision is not None:
            dumped["holidays"]["subdivision"] = config.holidays_subdivision
    dumped["extra_holidays"] = [day.isoformat() for day in sorted(config.extra_holidays)]
    dumped["extra_workdays"] = {day.isoformat(): WEEKDAYS[weekday] for day, weekday in config.extra_workdays}
    return dumped


def _dump_hours(hours: tuple[DayHours, ...]) -> dict[str, list[str]]:
    """Runs of weekdays with equal hours as ranges, e.g. mon-fri; days without hours are left out."""
    dumped: dict[str, list[str]] = {}
    day = 0
    while day < 7:
        last = day
        while last + 1 < 7 and hours[last + 1] == hours[day]:
            last += 1
        if hours[day]:
            key = WEEKDAYS[day] if last == day else f"{WEEKDAYS[day]}-{WEEKDAYS[last]}"
            dumped[key] = [f"{_clock(start)}-{_clock(end)}" for start, end in hours[day]]
        day = last + 1
    return dumped


def _clock(second_of_day: int) -> str:
    return f"{second_of_day // 3600:02d}:{second_of_day // 60 % 60:02d}"


def _dump_policy(policy: Policy) -> dict[str, Any]:
    return {
        "id": policy.id,
        "name": policy.name,
        "agreement": policy.agreement,
        "match": {key: list(values) for key, values in policy.match.items()},
        "metrics": [_dump_metric(rule) for rule in policy.metrics],
    }


def _dump_metric(rule: MetricRule) -> dict[str, Any]:
    return {
        "metric": rule.metric,
        "calendar": rule.calendar,
        "targets": {priority: format_duration(seconds) for priority, seconds in rule.targets.items()},
        "start": {"retroactive": rule.retroactive},
        "pause": {"statuses": list(rule.pause_statuses)},
        "stop": {"actions": list(rule.stop_actions), "statuses": list(rule.stop_statuses)},
        "cancel": {"statuses": list(rule.cancel_statuses)},
        "on_reopen": rule.on_reopen,
        "warn_at": list(rule.warn_at),
    }
