"""The `policies` and `slos` sections: matches, metric rules and SLO entries, validated."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sla_engine.domain.bundle.model import (
    AGREEMENTS,
    MATCH_FIELDS,
    ON_REOPEN,
    MetricRule,
    Policy,
    SloConfig,
    parse_duration,
)
from sla_engine.domain.bundle.slos import parse_slo_definition
from sla_engine.domain.bundle.source import Checker, join_path, kind_of
from sla_engine.domain.timeline import TICKET_ACTIONS, TICKET_KINDS, TICKET_STATUSES

if TYPE_CHECKING:
    from collections.abc import Sequence


def parse_policy(check: Checker, raw: Any, path: str, calendars: set[str]) -> Policy | None:
    value = check.mapping(
        raw, path, ("id", "name", "agreement", "match", "metrics"), required=("id", "agreement", "metrics")
    )
    if value is None:
        return None
    policy_id = check.text(value.get("id"), join_path(path, "id")) if value.get("id") is not None else None
    name = value.get("name", policy_id)
    if "name" in value:
        name = check.text(name, join_path(path, "name"))
    agreement = value.get("agreement")
    if agreement is not None and agreement not in AGREEMENTS:
        check.error(join_path(path, "agreement"), f"{agreement!r} is not one of: {', '.join(AGREEMENTS)}")
    match = _parse_match(check, value.get("match"), join_path(path, "match"))
    metrics: list[MetricRule] = []
    names: set[str] = set()
    metric_list = check.sequence(value.get("metrics"), join_path(path, "metrics"))
    if "metrics" in value and isinstance(value.get("metrics"), list) and not metric_list:
        check.error(join_path(path, "metrics"), "a policy needs at least one metric")
    for position, metric_raw in enumerate(metric_list):
        metric_path = join_path(join_path(path, "metrics"), position)
        rule = _parse_metric(check, metric_raw, metric_path, calendars)
        if rule is None:
            continue
        if rule.metric in names:
            check.error(join_path(metric_path, "metric"), f"duplicate metric {rule.metric!r} in this policy")
            continue
        names.add(rule.metric)
        metrics.append(rule)
    if (
        policy_id is None
        or name is None
        or agreement not in AGREEMENTS
        or match is None
        or len(metrics) != len(metric_list)
        or not metrics
    ):
        return None
    return Policy(id=policy_id, name=name, agreement=agreement, match=match, metrics=tuple(metrics))


def _parse_match(check: Checker, raw: Any, path: str) -> dict[str, tuple[str, ...]] | None:
    if raw is None:
        return {}
    value = check.mapping(
        raw, path, MATCH_FIELDS, extra=lambda key: key.startswith("attributes.") and len(key) > len("attributes.")
    )
    if value is None:
        return None
    match: dict[str, tuple[str, ...]] = {}
    valid = True
    for key, wanted in value.items():
        key_path = join_path(path, key)
        items = wanted if isinstance(wanted, list) else [wanted]
        if not items:
            check.error(key_path, "an empty list matches nothing; remove the key to match any value")
            valid = False
            continue
        values: list[str] = []
        for position, item in enumerate(items):
            item_path = join_path(key_path, position) if isinstance(wanted, list) else key_path
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


def _parse_metric(check: Checker, raw: Any, path: str, calendars: set[str]) -> MetricRule | None:
    value = check.mapping(raw, path, _METRIC_KEYS, required=("metric", "calendar", "targets"))
    if value is None:
        return None
    issues_before = len(check.issues)
    metric = check.text(value["metric"], join_path(path, "metric")) if value.get("metric") is not None else None
    calendar = value.get("calendar")
    if (
        calendar is not None
        and check.text(calendar, join_path(path, "calendar")) is not None
        and calendar not in calendars
    ):
        known = ", ".join(sorted(calendars))
        check.error(join_path(path, "calendar"), f"unknown calendar {calendar!r}; defined: {known}")
    targets = _parse_targets(check, value.get("targets"), join_path(path, "targets"))
    retroactive = False
    if value.get("start") is not None:
        start = check.mapping(value["start"], join_path(path, "start"), ("retroactive",))
        if start is not None and "retroactive" in start:
            if isinstance(start["retroactive"], bool):
                retroactive = start["retroactive"]
            else:
                check.error(join_path(path, "start.retroactive"), "must be true or false")
    pause = _section(check, value.get("pause"), join_path(path, "pause"), ("statuses",))
    stop = _section(check, value.get("stop"), join_path(path, "stop"), ("actions", "statuses"))
    cancel = _section(check, value.get("cancel"), join_path(path, "cancel"), ("statuses",))
    pause_statuses = check.choices(pause.get("statuses"), join_path(path, "pause.statuses"), TICKET_STATUSES, "status")
    stop_actions = check.choices(stop.get("actions"), join_path(path, "stop.actions"), TICKET_ACTIONS, "action")
    stop_statuses = check.choices(stop.get("statuses"), join_path(path, "stop.statuses"), TICKET_STATUSES, "status")
    cancel_statuses = check.choices(
        cancel.get("statuses"), join_path(path, "cancel.statuses"), TICKET_STATUSES, "status"
    )
    _no_overlap(check, path, pause_statuses, stop_statuses, cancel_statuses)
    on_reopen = value.get("on_reopen", "ignore")
    if on_reopen not in ON_REOPEN:
        check.error(join_path(path, "on_reopen"), f"{on_reopen!r} is not one of: {', '.join(ON_REOPEN)}")
    warn_at = _parse_warn_at(check, value.get("warn_at"), join_path(path, "warn_at"))
    if len(check.issues) > issues_before or metric is None or not isinstance(calendar, str) or targets is None:
        return None
    return MetricRule(
        metric=metric,
        calendar=calendar,
        targets=targets,
        pause_statuses=pause_statuses,
        stop_actions=stop_actions,
        stop_statuses=stop_statuses,
        cancel_statuses=cancel_statuses,
        on_reopen=on_reopen,
        warn_at=warn_at,
        retroactive=retroactive,
    )


def _section(check: Checker, raw: Any, path: str, keys: Sequence[str]) -> dict[Any, Any]:
    if raw is None:
        return {}
    return check.mapping(raw, path, keys) or {}


def _parse_targets(check: Checker, raw: Any, path: str) -> dict[str, int] | None:
    value = check.mapping(raw, path, (), extra=lambda key: True)
    if value is None:
        return None
    if not value:
        check.error(path, "needs at least one priority, e.g. {P1: 4h}")
        return None
    targets: dict[str, int] = {}
    for priority, duration in value.items():
        key_path = join_path(path, priority)
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


def _no_overlap(
    check: Checker, path: str, pause: tuple[str, ...], stop: tuple[str, ...], cancel: tuple[str, ...]
) -> None:
    sections = (("pause.statuses", pause), ("stop.statuses", stop), ("cancel.statuses", cancel))
    for later_index, (later_name, later) in enumerate(sections):
        for earlier_name, earlier in sections[:later_index]:
            for position, status in enumerate(later):
                if status in earlier:
                    check.error(
                        join_path(join_path(path, later_name), position),
                        f"{status!r} is already in {earlier_name}; a status can only do one thing",
                    )


def _parse_warn_at(check: Checker, raw: Any, path: str) -> tuple[int, ...]:
    thresholds: set[int] = set()
    for position, item in enumerate(check.sequence(raw, path)):
        item_path = join_path(path, position)
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= 99:
            check.error(item_path, f"{item!r} is not a whole percent between 1 and 99")
        elif item in thresholds:
            check.error(item_path, f"{item}% is listed twice")
        else:
            thresholds.add(item)
    return tuple(sorted(thresholds))


def parse_slo(
    check: Checker, raw: Any, path: str, calendars: set[str] | None = None, *, bounded: bool = True
) -> SloConfig | None:
    if not isinstance(raw, dict):
        check.error(path, f"must be a mapping, not {kind_of(raw)}")
        return None
    # Validated here for path+line errors; the evaluator rebuilds the definition from `raw`.
    definition = parse_slo_definition(check, raw, path, calendars, bounded=bounded)
    if definition is None:
        return None
    return SloConfig(id=definition.id, service=definition.service, raw=_jsonable(raw))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
