"""The rows of planned notifications: an event's facts as the decision reads them, a planned row, its arrival."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from reporting.domain.notification_sending import Lateness, on_arrival
from reporting.domain.notifications import AlertFacts, ClockFacts

if TYPE_CHECKING:
    from datetime import datetime

    from reporting.domain.notifications import Facts, Planned
    from slm_shared.events import ClockTransitionData, CloudEvent, SloAlertData

DEFAULT_LATENESS = Lateness()


def clock_facts(event: CloudEvent, data: ClockTransitionData) -> ClockFacts:
    return ClockFacts(
        ticket_id=data.ticket_id,
        policy_id=data.policy_id,
        metric=data.metric,
        cycle=data.cycle,
        transition=data.transition,
        at=event.time,
        threshold=data.threshold,
        agreement=data.agreement,
        priority=data.priority,
        service=data.service,
        customer=data.customer,
        state=data.state,
        due_at=data.due_at,
        elapsed_seconds=data.elapsed_seconds,
        target_seconds=data.target_seconds,
        calendar=data.calendar,
        policy_version=data.policy_version,
    )


def alert_facts(event: CloudEvent, data: SloAlertData) -> AlertFacts:
    return AlertFacts(
        slo_id=data.slo_id, service=event.subject or "", alert=data.alert, state=data.state, at=event.time
    )


def new_id() -> str:
    return f"ntf_{secrets.token_hex(10)}"


def planned_row(
    tenant: str, version: int, planned: Planned, facts: Facts, data: dict[str, Any], now: datetime
) -> dict[str, Any]:
    clock = facts if isinstance(facts, ClockFacts) else None
    return {
        "id": new_id(),
        "tenant_id": tenant,
        "idempotency_key": planned.key,
        "ladder_key": planned.ladder,
        "policy_version": version,
        "rule_id": planned.rule_id,
        "trigger": planned.trigger,
        "level": planned.level,
        "channel": planned.channel,
        "recipients": list(planned.recipients),
        "ticket_id": clock.ticket_id if clock else None,
        "policy_id": clock.policy_id if clock else None,
        "metric": clock.metric if clock else None,
        "cycle": clock.cycle if clock else None,
        "slo_id": facts.slo_id if isinstance(facts, AlertFacts) else None,
        "facts": data,
        "event_at": planned.event_at,
        "due_at": planned.due_at,
        "next_attempt_at": planned.due_at,
        "status": "pending",
        "reason": None,
        "attempts": 0,
        "created_at": now,
    }


def arrived(
    row: dict[str, Any], event_at: datetime, received_at: datetime, lateness: Lateness, newest: bool = True
) -> dict[str, Any]:
    """The planned row as its event's arrival makes it: pending on time, suppressed, or late (due after the
    backlog has settled, with the instant it should have gone out kept in its facts for the message)."""
    arrival = on_arrival(row["due_at"], event_at, received_at, lateness, newest)
    if arrival.suppressed is not None:
        return row | {"status": "suppressed", "reason": arrival.suppressed}
    if not arrival.late:
        return row
    late = {"received_at": received_at.isoformat(), "should_have_gone_at": row["due_at"].isoformat()}
    return row | {"due_at": arrival.due_at, "next_attempt_at": arrival.due_at, "facts": row["facts"] | {"late": late}}
