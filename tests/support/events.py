"""Builders for the events tests send, in the contract's own shapes."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any


def ticket_event(
    tenant: str,
    ticket_id: str,
    time: datetime,
    *,
    action: str = "created",
    status: str = "new",
    priority: str = "P2",
    kind: str = "incident",
    service: str = "email",
    customer: str = "acme",
    event_id: str | None = None,
    source: str = "test://helpdesk",
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": "itsm.ticket.v1",
        "time": time.isoformat(),
        "tenantid": tenant,
        "subject": ticket_id,
        "data": {
            "ticket_id": ticket_id,
            "action": action,
            "kind": kind,
            "service": service,
            "customer": customer,
            "priority": priority,
            "status": status,
            "assignment_group": "service-desk",
        },
    }


def batch_body(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events).encode()


BATCH_HEADERS = {"Content-Type": "application/cloudevents-batch+json"}

RESPONSE_BUNDLE = """
calendars: []
policies:
  - id: gold-incidents
    name: Gold incidents
    agreement: SLA
    match: {kind: incident, customer: [acme]}
    metrics:
      - metric: response
        calendar: 24x7
        targets: {P1: 15m, P2: 1h}
        stop: {actions: [agent_replied], statuses: [resolved, closed]}
        cancel: {statuses: [cancelled]}
"""


# One availability SLO of the email service: 95 % over a rolling day (72 minutes of budget).
AVAILABILITY_SLO_BUNDLE = """\
slos:
  - id: email-availability
    service: email
    sli: {type: availability}
    objective: 95
    window: {rolling: 1d}
"""


def availability_event(tenant: str, at: datetime, state: str) -> dict[str, Any]:
    """An `itsm.availability.v1` state change of the email service's smtp component."""
    return {
        "specversion": "1.0",
        "id": f"av-{uuid.uuid4().hex}",
        "source": "probe://e2e",
        "type": "itsm.availability.v1",
        "time": at.isoformat(),
        "tenantid": tenant,
        "subject": "email",
        "data": {"service": "email", "component": "smtp", "state": state},
    }
