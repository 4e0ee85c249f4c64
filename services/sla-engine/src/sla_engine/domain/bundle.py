"""The configuration bundle: calendars, policies and SLOs (DESIGN.md section 3), parsed and validated.

Rules:
- A bundle is YAML (or JSON, which is YAML too). Every problem is reported, not only the first, as a
  `BundleIssue` naming the exact field (`policies[0].metrics[1].targets.P2`) and its line in the source.
- Unknown keys are errors, so a typo never silently drops a rule.
- Durations are `<n>d<n>h<n>m<n>s` with at least one part, in that order (`15m`, `4h30m`, `90s`); they are
  always business time on the metric's calendar, and `1d` is 24 working hours (86400 business seconds).
- Statuses and actions are the canonical values of DESIGN.md 2.1; a status may sit in at most one of
  `pause`, `stop` and `cancel`, since the clock could not honour two of them at once.
- `24x7` is built in (every second counts). A bundle may list it as `{name: 24x7}` but not redefine it.
- `dump_bundle` gives the canonical JSON-able form; `parse_bundle` of that form gives an equal bundle.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from itertools import pairwise
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holiday_tables
import yaml

from sla_engine.domain.calendar import (
    DAY_SECONDS,
    TWENTY_FOUR_SEVEN,
    WEEKDAYS,
    BusinessCalendar,
    CalendarConfig,
    DayHours,
)
from sla_engine.domain.timeline import TICKET_ACTIONS, TICKET_KINDS, TICKET_STATUSES, TicketSnapshot

__all__ = [
    "AGREEMENTS", "MATCH_FIELDS", "ON_REOPEN", "Bundle", "BundleError", "BundleIssue", "CalendarConfig",
    "MetricRule", "OnReopen", "Policy", "SloConfig", "dump_bundle", "format_duration", "parse_bundle",
    "parse_duration",
]

OnReopen = Literal["resume", "new_cycle", "ignore"]
ON_REOPEN: tuple[OnReopen, ...] = ("resume", "new_cycle", "ignore")
AGREEMENTS = ("SLA", "OLA", "UC")
MATCH_FIELDS = ("kind", "service", "customer", "priority", "assignment_group", "assignee")
"""Snapshot fields a policy can match on; `attributes.<key>` matches an attribute as text."""

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNIT_SECONDS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
_DAY_KEY = re.compile(r"^([a-z]{3})(?:-([a-z]{3}))?$")
_INTERVAL = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_duration(text: str) -> int:
    """Seconds of a duration such as `4h30m`; raises ValueError with a readable reason."""
    match = _DURATION.match(text.strip()) if text.strip() else None
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use d, h, m, s in that order, e.g. 15m, 4h30m, 1d, 90s")
    seconds = sum(int(part) * unit for part, (_, unit) in zip(match.groups(), _UNIT_SECONDS, strict=True) if part)
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return seconds


def format_duration(seconds: int) -> str:
    """The canonical spelling of a positive duration: `86400` -> `1d`, `16200` -> `4h30m`."""
    parts = []
    rest = seconds
    for unit, size in _UNIT_SECONDS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


@dataclass(frozen=True)
class BundleIssue:
    path: str
    line: int | None
    message: str


class BundleError(ValueError):
    """An invalid bundle; `errors` lists every problem found, in source order."""

    def __init__(self, errors: list[BundleIssue]) -> None:
        self.errors = sorted(errors, key=lambda issue: (issue.line or 0, issue.path))
        super().__init__("\n".join(f"{issue.path or '<bundle>'} (line {issue.line or '?'}): {issue.message}"
                                   for issue in self.errors))


@dataclass(frozen=True)
class MetricRule:
    """One clock of a policy, e.g. `response` or `resolution` (DESIGN.md section 4)."""

    metric: str
    calendar: str
    targets: Mapping[str, int]
    pause_statuses: tuple[str, ...] = ()
    stop_actions: tuple[str, ...] = ()
    stop_statuses: tuple[str, ...] = ()
    cancel_statuses: tuple[str, ...] = ()
    on_reopen: OnReopen = "ignore"
    warn_at: tuple[int, ...] = ()
    retroactive: bool = False


@dataclass(frozen=True)
class Policy:
    """An agreement's rules for the tickets it matches: every `match` key must hold; a list means any of."""

    id: str
    name: str
    agreement: Literal["SLA", "OLA", "UC"]
    match: Mapping[str, tuple[str, ...]]
    metrics: tuple[MetricRule, ...]

    def matches(self, snapshot: TicketSnapshot) -> bool:
        return all(snapshot.field_value(key) in values for key, values in self.match.items())


@dataclass(frozen=True)
class SloConfig:
    """An SLO definition, kept as written (in JSON-able form) for the SLO evaluator."""

    id: str
    service: str
    raw: Mapping[str, Any]


@dataclass(frozen=True)
class Bundle:
    calendars: tuple[CalendarConfig, ...] = ()
    policies: tuple[Policy, ...] = ()
    slos: tuple[SloConfig, ...] = ()
    _built: Mapping[str, BusinessCalendar] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        built = {config.name: BusinessCalendar(config) for config in self.calendars}
        object.__setattr__(self, "_built", built)

    def calendar(self, name: str) -> BusinessCalendar:
        """The named calendar; `24x7` is always there. Raises KeyError for an unknown name."""
        if name == TWENTY_FOUR_SEVEN.name:
            return TWENTY_FOUR_SEVEN
        return self._built[name]

    def policy(self, policy_id: str) -> Policy:
        """The policy with that id. Raises KeyError for an unknown id."""
        for policy in self.policies:
            if policy.id == policy_id:
                return policy
        raise KeyError(policy_id)


# -- loading -------------------------------------------------------------------------------------------


def _join(path: str, key: object) -> str:
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _load(text: str, content_type: Literal["yaml", "json"]) -> tuple[Any, dict[str, int], list[BundleIssue]]:
    """The document, the line of every path in it, and syntax or duplicate-key issues."""
    lines: dict[str, int] = {}
    issues: list[BundleIssue] = []
    if content_type == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            return None, lines, [BundleIssue("", error.lineno, f"invalid JSON: {error.msg}")]
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            node = None  # JSON that PyYAML's YAML 1.1 reader refuses: valid, only without line numbers
        if node is not None:
            _walk(node, "", lines, issues, 0)
        return data, lines, issues
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _walk(node, "", lines, issues, 0)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        return None, lines, [BundleIssue("", mark.line + 1 if mark else None, f"invalid YAML: {error.problem}")]
    except yaml.YAMLError as error:
        return None, lines, [BundleIssue("", None, f"invalid YAML: {error}")]
    finally:
        loader.dispose()
    return data, lines, issues


def _walk(node: yaml.Node, path: str, lines: dict[str, int], issues: list[BundleIssue], depth: int) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if depth > 64:
        return  # a self-referencing alias; the validator reports the shape
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = _join(path, key)
            if key in seen:
                issues.append(BundleIssue(child, key_node.start_mark.line + 1, f"duplicate key {key!r}"))
            seen.add(key)
            lines.setdefault(child, key_node.start_mark.line + 1)
            _walk(value_node, child, lines, issues, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            _walk(item, _join(path, position), lines, issues, depth + 1)


class _Checker:
    """Collects issues with their lines while reading a loaded document."""

    def __init__(self, lines: dict[str, int], issues: list[BundleIssue]) -> None:
        self.lines = lines
        self.issues = issues

    def error(self, path: str, message: str) -> None:
        self.issues.append(BundleIssue(path, self.line(path), message))

    def line(self, path: str) -> int | None:
        """The path's own line, else its nearest present ancestor's (a missing key: its parent's line)."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""

    def mapping(self, value: Any, path: str, allowed: Sequence[str], required: Sequence[str] = (),
                extra: Callable[[str], bool] | None = None) -> dict[Any, Any] | None:
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping, not {_kind(value)}")
            return None
        for key in value:
            if key not in allowed and not (extra is not None and isinstance(key, str) and extra(key)):
                self.error(_join(path, key), f"unknown key {key!r}; expected one of: {', '.join(allowed)}")
        for key in required:
            if key not in value or value[key] is None:
                self.error(_join(path, key), "is required")
        return value

    def sequence(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"must be a list, not {_kind(value)}")
            return []
        return value

    def text(self, value: Any, path: str) -> str | None:
        if isinstance(value, str) and value.strip():
            return value
        hint = " (quote it in YAML)" if isinstance(value, bool | int | float | date) else ""
        self.error(path, f"must be a non-empty string, not {_kind(value)}{hint}")
        return None

    def choices(self, value: Any, path: str, allowed: Sequence[str], what: str) -> tuple[str, ...]:
        """A list of canonical values (duplicates dropped, order kept)."""
        chosen: list[str] = []
        for position, item in enumerate(self.sequence(value, path)):
            item_path = _join(path, position)
            if not isinstance(item, str) or item not in allowed:
                self.error(item_path, f"{item!r} is not a canonical {what}; expected one of: {', '.join(allowed)}")
            elif item not in chosen:
                chosen.append(item)
        return tuple(chosen)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


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


def _parse_calendar(check: _Checker, raw: Any, path: str) -> CalendarConfig | None:
    keys = ("name", "timezone", "hours", "holidays", "extra_holidays", "extra_workdays")
    if isinstance(raw, dict) and raw.get("name") == TWENTY_FOUR_SEVEN.name:
        if set(raw) != {"name"}:
            check.error(_join(path, "name"), "24x7 is built in (every second counts) and cannot be redefined")
        return None
    value = check.mapping(raw, path, keys, required=("name", "timezone", "hours"))
    if value is None:
        return None
    name = check.text(value["name"], _join(path, "name")) if value.get("name") is not None else None
    zone = value.get("timezone")
    if zone is not None and check.text(zone, _join(path, "timezone")) is not None and not _valid_zone(zone):
        check.error(_join(path, "timezone"), f"unknown time zone {zone!r}; use an IANA name such as Asia/Shanghai")
        zone = None
    hours = _parse_hours(check, value["hours"], _join(path, "hours")) if value.get("hours") is not None else None
    country, subdivision = _parse_holidays(check, value.get("holidays"), _join(path, "holidays"))
    extra_holidays = _parse_extra_holidays(check, value.get("extra_holidays"), _join(path, "extra_holidays"))
    extra_workdays = _parse_extra_workdays(check, value.get("extra_workdays"), _join(path, "extra_workdays"),
                                           hours, extra_holidays)
    if hours is not None and not any(hours) and not extra_workdays:
        check.error(_join(path, "hours"), "the week has no working hours, so no deadline would ever come")
    if name is None or not isinstance(zone, str) or hours is None:
        return None
    return CalendarConfig(name=name, timezone=zone, hours=hours, holidays_country=country,
                          holidays_subdivision=subdivision, extra_holidays=extra_holidays,
                          extra_workdays=extra_workdays)


def _parse_hours(check: _Checker, raw: Any, path: str) -> tuple[DayHours, ...] | None:
    value = check.mapping(raw, path, (), extra=lambda key: True)
    if value is None:
        return None
    week: list[DayHours | None] = [None] * 7
    given_by: dict[int, str] = {}
    valid = True
    for key, intervals in value.items():
        key_path = _join(path, key)
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


def _parse_intervals(check: _Checker, raw: Any, path: str) -> DayHours | None:
    items = [raw] if isinstance(raw, str) else check.sequence(raw, path)
    if not isinstance(raw, str | list) and raw is not None:
        return None
    parsed: list[tuple[int, int, str]] = []
    valid = True
    for position, item in enumerate(items):
        item_path = path if isinstance(raw, str) else _join(path, position)
        interval = _interval(item)
        if interval is None:
            check.error(item_path, f"{item!r} is not a wall-clock interval such as 09:00-12:00 (end may be 24:00, "
                                   "and must be after the start)")
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


def _parse_holidays(check: _Checker, raw: Any, path: str) -> tuple[str | None, str | None]:
    if raw is None:
        return None, None
    value = check.mapping(raw, path, ("country", "subdivision"), required=("country",))
    if value is None or value.get("country") is None:
        return None, None
    country = check.text(value["country"], _join(path, "country"))
    supported = _supported_countries()
    if country is None:
        return None, None
    if country not in supported:
        check.error(_join(path, "country"), f"unknown holiday country {country!r}; use an ISO 3166 code such as CN")
        return None, None
    subdivision = value.get("subdivision")
    if subdivision is None:
        return country, None
    if check.text(subdivision, _join(path, "subdivision")) is None:
        return None, None
    if subdivision not in supported[country]:
        known = ", ".join(supported[country][:12]) or "none"
        check.error(_join(path, "subdivision"), f"unknown subdivision {subdivision!r} of {country} (known: {known})")
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


def _parse_extra_holidays(check: _Checker, raw: Any, path: str) -> frozenset[date]:
    days: set[date] = set()
    for position, item in enumerate(check.sequence(raw, path)):
        day = _as_date(item)
        if day is None:
            check.error(_join(path, position), f"{item!r} is not a date (YYYY-MM-DD)")
        else:
            days.add(day)
    return frozenset(days)


def _parse_extra_workdays(check: _Checker, raw: Any, path: str, hours: tuple[DayHours, ...] | None,
                          extra_holidays: frozenset[date]) -> tuple[tuple[date, int], ...]:
    if raw is None:
        return ()
    value = check.mapping(raw, path, (), extra=lambda key: True)
    if value is None:
        return ()
    workdays: dict[date, int] = {}
    for key, weekday in value.items():
        key_path = _join(path, key)
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


# -- policies ------------------------------------------------------------------------------------------


def _parse_policy(check: _Checker, raw: Any, path: str, calendars: set[str]) -> Policy | None:
    value = check.mapping(raw, path, ("id", "name", "agreement", "match", "metrics"),
                          required=("id", "agreement", "metrics"))
    if value is None:
        return None
    policy_id = check.text(value.get("id"), _join(path, "id")) if value.get("id") is not None else None
    name = value.get("name", policy_id)
    if "name" in value:
        name = check.text(name, _join(path, "name"))
    agreement = value.get("agreement")
    if agreement is not None and agreement not in AGREEMENTS:
        check.error(_join(path, "agreement"), f"{agreement!r} is not one of: {', '.join(AGREEMENTS)}")
    match = _parse_match(check, value.get("match"), _join(path, "match"))
    metrics: list[MetricRule] = []
    names: set[str] = set()
    metric_list = check.sequence(value.get("metrics"), _join(path, "metrics"))
    if "metrics" in value and isinstance(value.get("metrics"), list) and not metric_list:
        check.error(_join(path, "metrics"), "a policy needs at least one metric")
    for position, metric_raw in enumerate(metric_list):
        metric_path = _join(_join(path, "metrics"), position)
        rule = _parse_metric(check, metric_raw, metric_path, calendars)
        if rule is None:
            continue
        if rule.metric in names:
            check.error(_join(metric_path, "metric"), f"duplicate metric {rule.metric!r} in this policy")
            continue
        names.add(rule.metric)
        metrics.append(rule)
    if policy_id is None or name is None or agreement not in AGREEMENTS or match is None \
            or len(metrics) != len(metric_list) or not metrics:
        return None
    return Policy(id=policy_id, name=name, agreement=agreement, match=match, metrics=tuple(metrics))


def _parse_match(check: _Checker, raw: Any, path: str) -> dict[str, tuple[str, ...]] | None:
    if raw is None:
        return {}
    value = check.mapping(raw, path, MATCH_FIELDS,
                          extra=lambda key: key.startswith("attributes.") and len(key) > len("attributes."))
    if value is None:
        return None
    match: dict[str, tuple[str, ...]] = {}
    valid = True
    for key, wanted in value.items():
        key_path = _join(path, key)
        items = wanted if isinstance(wanted, list) else [wanted]
        if not items:
            check.error(key_path, "an empty list matches nothing; remove the key to match any value")
            valid = False
            continue
        values: list[str] = []
        for position, item in enumerate(items):
            item_path = _join(key_path, position) if isinstance(wanted, list) else key_path
            text = check.text(item, item_path)
            if text is None:
                valid = False
            elif key == "kind" and text not in TICKET_KINDS:
                check.error(item_path, f"{text!r} is not a ticket kind; expected one of: {', '.join(TICKET_KINDS)}")
                valid = False
            elif text not in values:
                values.append(text)
        match[str(key)] = tuple(values)
    return match if valid else None


_METRIC_KEYS = ("metric", "calendar", "targets", "start", "pause", "stop", "cancel", "on_reopen", "warn_at")


def _parse_metric(check: _Checker, raw: Any, path: str, calendars: set[str]) -> MetricRule | None:
    value = check.mapping(raw, path, _METRIC_KEYS, required=("metric", "calendar", "targets"))
    if value is None:
        return None
    issues_before = len(check.issues)
    metric = check.text(value["metric"], _join(path, "metric")) if value.get("metric") is not None else None
    calendar = value.get("calendar")
    if calendar is not None and check.text(calendar, _join(path, "calendar")) is not None \
            and calendar not in calendars:
        known = ", ".join(sorted(calendars))
        check.error(_join(path, "calendar"), f"unknown calendar {calendar!r}; defined: {known}")
    targets = _parse_targets(check, value.get("targets"), _join(path, "targets"))
    retroactive = False
    if value.get("start") is not None:
        start = check.mapping(value["start"], _join(path, "start"), ("retroactive",))
        if start is not None and "retroactive" in start:
            if isinstance(start["retroactive"], bool):
                retroactive = start["retroactive"]
            else:
                check.error(_join(path, "start.retroactive"), "must be true or false")
    pause = _section(check, value.get("pause"), _join(path, "pause"), ("statuses",))
    stop = _section(check, value.get("stop"), _join(path, "stop"), ("actions", "statuses"))
    cancel = _section(check, value.get("cancel"), _join(path, "cancel"), ("statuses",))
    pause_statuses = check.choices(pause.get("statuses"), _join(path, "pause.statuses"), TICKET_STATUSES, "status")
    stop_actions = check.choices(stop.get("actions"), _join(path, "stop.actions"), TICKET_ACTIONS, "action")
    stop_statuses = check.choices(stop.get("statuses"), _join(path, "stop.statuses"), TICKET_STATUSES, "status")
    cancel_statuses = check.choices(cancel.get("statuses"), _join(path, "cancel.statuses"), TICKET_STATUSES,
                                    "status")
    _no_overlap(check, path, pause_statuses, stop_statuses, cancel_statuses)
    on_reopen = value.get("on_reopen", "ignore")
    if on_reopen not in ON_REOPEN:
        check.error(_join(path, "on_reopen"), f"{on_reopen!r} is not one of: {', '.join(ON_REOPEN)}")
    warn_at = _parse_warn_at(check, value.get("warn_at"), _join(path, "warn_at"))
    if len(check.issues) > issues_before or metric is None or not isinstance(calendar, str) or targets is None:
        return None
    return MetricRule(metric=metric, calendar=calendar, targets=targets, pause_statuses=pause_statuses,
                      stop_actions=stop_actions, stop_statuses=stop_statuses, cancel_statuses=cancel_statuses,
                      on_reopen=on_reopen, warn_at=warn_at, retroactive=retroactive)


def _section(check: _Checker, raw: Any, path: str, keys: Sequence[str]) -> dict[Any, Any]:
    if raw is None:
        return {}
    return check.mapping(raw, path, keys) or {}


def _parse_targets(check: _Checker, raw: Any, path: str) -> dict[str, int] | None:
    value = check.mapping(raw, path, (), extra=lambda key: True)
    if value is None:
        return None
    if not value:
        check.error(path, "needs at least one priority, e.g. {P1: 4h}")
        return None
    targets: dict[str, int] = {}
    for priority, duration in value.items():
        key_path = _join(path, priority)
        if not isinstance(priority, str):
            check.error(key_path, f"priority {priority!r} must be a string (quote it in YAML)")
            continue
        if not isinstance(duration, str):
            check.error(key_path, f"{duration!r} is not a duration: give a unit, e.g. 15m, 4h30m, 1d, 90s")
            continue
        try:
            targets[priority] = parse_duration(duration)
        except ValueError as error:
            check.error(key_path, str(error))
    return targets if len(targets) == len(value) else None


def _no_overlap(check: _Checker, path: str, pause: tuple[str, ...], stop: tuple[str, ...],
                cancel: tuple[str, ...]) -> None:
    sections = (("pause.statuses", pause), ("stop.statuses", stop), ("cancel.statuses", cancel))
    for later_index, (later_name, later) in enumerate(sections):
        for earlier_name, earlier in sections[:later_index]:
            for position, status in enumerate(later):
                if status in earlier:
                    check.error(_join(_join(path, later_name), position),
                                f"{status!r} is already in {earlier_name}; a status can only do one thing")


def _parse_warn_at(check: _Checker, raw: Any, path: str) -> tuple[int, ...]:
    thresholds: set[int] = set()
    for position, item in enumerate(check.sequence(raw, path)):
        item_path = _join(path, position)
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= 99:
            check.error(item_path, f"{item!r} is not a whole percent between 1 and 99")
        elif item in thresholds:
            check.error(item_path, f"{item}% is listed twice")
        else:
            thresholds.add(item)
    return tuple(sorted(thresholds))


# -- SLOs ----------------------------------------------------------------------------------------------


def _parse_slo(check: _Checker, raw: Any, path: str) -> SloConfig | None:
    if not isinstance(raw, dict):
        check.error(path, f"must be a mapping, not {_kind(raw)}")
        return None
    slo_id = check.text(raw.get("id"), _join(path, "id"))
    service = check.text(raw.get("service"), _join(path, "service"))
    if slo_id is None or service is None:
        return None
    return SloConfig(id=slo_id, service=service, raw=_jsonable(raw))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


# -- the bundle ----------------------------------------------------------------------------------------


def parse_bundle(text: str, *, content_type: Literal["yaml", "json"] = "yaml") -> Bundle:
    """Parse and validate a bundle; raises `BundleError` listing every problem with its path and line."""
    data, lines, issues = _load(text, content_type)
    if issues and data is None:
        raise BundleError(issues)
    check = _Checker(lines, issues)
    if data is None:
        check.error("", "the bundle is empty; expected a mapping with calendars, policies and slos")
        raise BundleError(check.issues)
    top = check.mapping(data, "", ("calendars", "policies", "slos"))
    if top is None:
        raise BundleError(check.issues)

    calendars: list[CalendarConfig] = []
    names = {TWENTY_FOUR_SEVEN.name}
    for position, raw in enumerate(check.sequence(top.get("calendars"), "calendars")):
        path = _join("calendars", position)
        name = raw.get("name") if isinstance(raw, dict) else None
        if isinstance(name, str) and name != TWENTY_FOUR_SEVEN.name and name in names:
            check.error(_join(path, "name"), f"duplicate calendar name {name!r}")
        config = _parse_calendar(check, raw, path)
        if isinstance(name, str):
            names.add(name)
        if config is not None:
            calendars.append(config)

    policies: list[Policy] = []
    policy_ids: set[str] = set()
    for position, raw in enumerate(check.sequence(top.get("policies"), "policies")):
        path = _join("policies", position)
        policy_id = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(policy_id, str) and policy_id in policy_ids:
            check.error(_join(path, "id"), f"duplicate policy id {policy_id!r}")
        if isinstance(policy_id, str):
            policy_ids.add(policy_id)
        policy = _parse_policy(check, raw, path, names)
        if policy is not None:
            policies.append(policy)

    slos: list[SloConfig] = []
    slo_ids: set[str] = set()
    for position, raw in enumerate(check.sequence(top.get("slos"), "slos")):
        path = _join("slos", position)
        slo = _parse_slo(check, raw, path)
        if slo is not None and slo.id in slo_ids:
            check.error(_join(path, "id"), f"duplicate SLO id {slo.id!r}")
        elif slo is not None:
            slo_ids.add(slo.id)
            slos.append(slo)

    if check.issues:
        raise BundleError(check.issues)
    return Bundle(calendars=tuple(calendars), policies=tuple(policies), slos=tuple(slos))


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
