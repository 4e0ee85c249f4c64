"""Builders of the events the other services would publish, as reporting receives them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from slm_shared.events import (
    CLOCK_EVENT,
    FEEDBACK_EVENT,
    SLO_ALERT_EVENT,
    SLO_STATUS_EVENT,
    TICKET_EVENT,
    ClockTransitionData,
    CloudEvent,
    FeedbackData,
    RetractedTransition,
    SloAlertData,
    SloStatusData,
    TicketSnapshotData,
    make_event,
)

SHANGHAI = timezone(timedelta(hours=8))
TARGETS = {  # the gold-incidents targets of DESIGN section 3, in working seconds
    ("response", "P1"): 900,
    ("response", "P2"): 3600,
    ("response", "P3"): 14400,
    ("response", "P4"): 86400,
    ("resolution", "P1"): 14400,
    ("resolution", "P2"): 28800,
    ("resolution", "P3"): 259200,
    ("resolution", "P4"): 432000,
}


def local(text: str, year: int = 2026) -> datetime:
    """`"10-05 09:10"` or `"10-05 09:10:30"` in Asia/Shanghai (+08:00, no daylight saving)."""
    day, clock = text.split(" ")
    month, dom = (int(x) for x in day.split("-"))
    parts = [int(x) for x in clock.split(":")]
    return datetime(year, month, dom, parts[0], parts[1], parts[2] if len(parts) > 2 else 0, tzinfo=SHANGHAI)


def clock_event(
    tenant: str,
    ticket: str,
    transition: str,
    at: datetime,
    *,
    metric: str,
    state: str,
    elapsed: int,
    priority: str,
    started_at: datetime,
    target: int | None = None,
    stopped_at: datetime | None = None,
    breached_at: datetime | None = None,
    due_at: datetime | None = None,
    policy: str = "gold-incidents",
    version: int = 3,
    agreement: str = "SLA",
    calendar: str = "cn-business",
    service: str = "email",
    customer: str = "acme",
    cycle: int = 1,
    event_id: str | None = None,
    sequence: int | None = None,
    threshold: int | None = None,
    retracts: RetractedTransition | None = None,
) -> CloudEvent:
    target = target if target is not None else TARGETS[(metric, priority)]
    breached = breached_at is not None
    data = ClockTransitionData(
        ticket_id=ticket,
        policy_id=policy,
        policy_version=version,
        agreement=agreement,
        metric=metric,
        cycle=cycle,
        transition=transition,
        state=state,
        breached=breached,
        target_seconds=target,
        elapsed_seconds=elapsed,
        remaining_seconds=target - elapsed,
        percent=round(100 * elapsed / target, 2),
        started_at=started_at,
        due_at=due_at,
        breached_at=breached_at,
        stopped_at=stopped_at,
        service=service,
        customer=customer,
        priority=priority,
        kind="incident",
        calendar=calendar,
        sequence=sequence,
        threshold=threshold,
        retracts=retracts,
    )
    return make_event(
        event_id=event_id or str(uuid.uuid4()),
        source="slm://sla-engine",
        event_type=CLOCK_EVENT,
        time=at,
        tenant_id=tenant,
        subject=ticket,
        data=data,
    )


def ticket_event(
    tenant: str,
    ticket: str,
    at: datetime,
    action: str,
    status: str,
    *,
    priority: str,
    service: str = "email",
    customer: str = "acme",
    assignment_group: str | None = None,
) -> CloudEvent:
    data = TicketSnapshotData(
        ticket_id=ticket,
        action=action,
        kind="incident",
        service=service,
        customer=customer,
        priority=priority,
        status=status,
        assignment_group=assignment_group,
    )
    return make_event(
        event_id=str(uuid.uuid4()),
        source="jira://acme.atlassian.net",
        event_type=TICKET_EVENT,
        time=at,
        tenant_id=tenant,
        subject=ticket,
        data=data,
    )


def feedback_event(
    tenant: str,
    ticket: str,
    at: datetime,
    score: int,
    scale: int = 5,
    service: str = "email",
    comment: str | None = None,
) -> CloudEvent:
    data = FeedbackData(ticket_id=ticket, service=service, score=score, scale=scale, comment=comment)
    return make_event(
        event_id=str(uuid.uuid4()),
        source="jira://acme.atlassian.net",
        event_type=FEEDBACK_EVENT,
        time=at,
        tenant_id=tenant,
        subject=ticket,
        data=data,
    )


def slo_status_event(tenant: str, at: datetime, **fields: Any) -> CloudEvent:
    data = SloStatusData(**fields)
    return make_event(
        event_id=str(uuid.uuid4()),
        source="slm://sla-engine",
        event_type=SLO_STATUS_EVENT,
        time=at,
        tenant_id=tenant,
        subject=data.service,
        data=data,
    )


def slo_alert_event(tenant: str, at: datetime, service: str, **fields: Any) -> CloudEvent:
    data = SloAlertData(**fields)
    return make_event(
        event_id=str(uuid.uuid4()),
        source="slm://sla-engine",
        event_type=SLO_ALERT_EVENT,
        time=at,
        tenant_id=tenant,
        subject=service,
        data=data,
    )
