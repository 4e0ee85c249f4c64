"""Small builders for the sla-engine domain tests: calendars, bundles and snapshots from short literals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from sla_engine.domain.bundle import Bundle, parse_bundle
from sla_engine.domain.clocks import Clock, evaluate_ticket
from sla_engine.domain.timeline import TicketSnapshot
from slm_shared.business_time import BusinessCalendar

CN_HOURS = {"mon-fri": ["09:00-12:00", "13:00-18:00"]}


def make_calendar(hours: Mapping[str, Any], timezone: str = "Asia/Shanghai", **extra: Any) -> BusinessCalendar:
    """A calendar through the public bundle path (so it is validated the way production ones are)."""
    definition = {"name": "test", "timezone": timezone, "hours": dict(hours), **extra}
    return parse_bundle(yaml.safe_dump({"calendars": [definition]})).calendar("test")


def local(zone: str, text: str) -> datetime:
    """`local("Asia/Shanghai", "2026-11-09 09:30")`: a wall-clock time in a zone (fold=0)."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("UTC"))


def make_bundle(
    *,
    calendar: str = "24x7",
    calendars: Sequence[Mapping[str, Any]] = (),
    targets: Mapping[str, str] | None = None,
    match: Mapping[str, Any] | None = None,
    metric: str = "resolution",
    pause: Sequence[str] = ("pending_customer", "pending_vendor"),
    stop_actions: Sequence[str] = (),
    stop_statuses: Sequence[str] = ("resolved", "closed"),
    cancel: Sequence[str] = ("cancelled",),
    on_reopen: str = "ignore",
    warn_at: Sequence[int] = (),
    retroactive: bool = False,
) -> Bundle:
    rule: dict[str, Any] = {
        "metric": metric,
        "calendar": calendar,
        "targets": dict(targets or {"P1": "1h", "P2": "8h", "P3": "1d"}),
        "pause": {"statuses": list(pause)},
        "stop": {"actions": list(stop_actions), "statuses": list(stop_statuses)},
        "cancel": {"statuses": list(cancel)},
        "on_reopen": on_reopen,
        "warn_at": list(warn_at),
    }
    if retroactive:
        rule["start"] = {"retroactive": True}
    policy = {
        "id": "gold",
        "name": "Gold",
        "agreement": "SLA",
        "match": dict(match if match is not None else {"kind": "incident", "customer": ["acme"]}),
        "metrics": [rule],
    }
    return parse_bundle(yaml.safe_dump({"calendars": [dict(c) for c in calendars], "policies": [policy]}))


def snap(
    event_id: str,
    time: datetime,
    action: str = "updated",
    status: str = "open",
    priority: str = "P2",
    *,
    kind: str = "incident",
    customer: str = "acme",
    arrival: int | None = None,
) -> TicketSnapshot:
    return TicketSnapshot(
        event_id=event_id,
        time=time,
        arrival=arrival if arrival is not None else int(time.timestamp()),
        ticket_id="INC-1",
        action=action,
        kind=kind,
        status=status,
        priority=priority,
        service="email",
        customer=customer,
        assignment_group="service-desk",
        assignee=None,
        attributes={},
    )


def clocks_at(snapshots: Sequence[TicketSnapshot], bundle: Bundle, at: datetime) -> list[Clock]:
    return evaluate_ticket(snapshots, bundle, policy_version=1, at=at)


def only_clock(snapshots: Sequence[TicketSnapshot], bundle: Bundle, at: datetime) -> Clock:
    clocks = clocks_at(snapshots, bundle, at)
    assert len(clocks) == 1, clocks
    return clocks[0]


def transitions(clock: Clock) -> list[tuple[str, str, int | None]]:
    """(name, UTC time as `YYYY-MM-DD HH:MM:SS`, threshold) of every transition."""
    return [(t.transition, t.at.strftime("%Y-%m-%d %H:%M:%S"), t.threshold) for t in clock.transitions]
