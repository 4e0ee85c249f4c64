"""Builders for the events tests send, in the contract's own shapes."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any


def ticket_event(
    tenant: str, ticket_id: str, time: datetime, *, action: str = "created", status: str = "new",
    priority: str = "P2", kind: str = "incident", service: str = "email", customer: str = "acme",
    event_id: str | None = None, source: str = "test://helpdesk",
) -> dict[str, Any]:
    return {
        "specversion": "1.0", "id": event_id or str(uuid.uuid4()), "source": source, "type": "itsm.ticket.v1",
        "time": time.isoformat(), "tenantid": tenant, "subject": ticket_id,
        "data": {"ticket_id": ticket_id, "action": action, "kind": kind, "service": service,
                 "customer": customer, "priority": priority, "status": status,
                 "assignment_group": "service-desk"},
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
