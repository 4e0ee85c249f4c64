"""Intake's acceptance rules, pure: what makes an incoming CloudEvent acceptable for a tenant.

Rules (documented in docs/intake.md):
- the envelope and `data` must match the shared contract; unknown `data` fields are rejected, upstream
  extras belong in `data.attributes`; unknown envelope attributes are CloudEvent extensions and are kept;
- `time` must carry an offset and lie no further ahead than the configured skew;
- `tenantid` must be the API key's tenant (an event claiming another tenant is rejected, never rerouted).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from slm_shared import topics
from slm_shared.events import (
    AVAILABILITY_EVENT,
    FEEDBACK_EVENT,
    MAINTENANCE_EVENT,
    MEASUREMENT_EVENT,
    TICKET_EVENT,
    CloudEvent,
    InvalidEvent,
    parse_cloudevent,
)

ROUTES = {
    TICKET_EVENT: topics.TICKETS,
    AVAILABILITY_EVENT: topics.SIGNALS,
    MEASUREMENT_EVENT: topics.SIGNALS,
    MAINTENANCE_EVENT: topics.SIGNALS,
    FEEDBACK_EVENT: topics.FEEDBACK,
}

Outcome = Literal["accepted", "duplicate", "rejected"]


@dataclass(frozen=True)
class EventResult:
    index: int
    outcome: Outcome
    id: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Routed:
    event: CloudEvent
    topic: str
    key: str


def route(event: CloudEvent) -> Routed:
    topic = ROUTES[event.type]
    if topic in (topics.TICKETS, topics.FEEDBACK):
        key = topics.ticket_key(event.tenantid, str(event.data["ticket_id"]))
    else:
        key = topics.service_key(event.tenantid, str(event.data["service"]))
    return Routed(event=event, topic=topic, key=key)


def accept(document: Any, *, tenant_id: str | None, now: datetime, max_future_skew: timedelta) -> Routed:
    """Validate one event; raises `InvalidEvent` naming the field and what was wrong."""
    event = parse_cloudevent(document)
    if event.type not in ROUTES:
        raise InvalidEvent(f"type: {event.type!r} is not accepted by intake (one of {sorted(ROUTES)})")
    if tenant_id is not None and event.tenantid != tenant_id:
        raise InvalidEvent("tenantid: does not match the API key's tenant")
    if event.time > now + max_future_skew:
        raise InvalidEvent(f"time: {event.time.isoformat()} is more than {max_future_skew} in the future")
    if event.subject is None:
        subject = event.data.get("ticket_id") or event.data.get("service")
        event = event.model_copy(update={"subject": subject})
    return route(event)
