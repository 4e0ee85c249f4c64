"""Native webhook adapters: an upstream service desk's payload -> canonical CloudEvents.

Each system has a `ref` (which archived ticket a payload is about, so the handler can fetch that ticket's
last snapshot) and `events` (the payload, the tenant's mapping and that snapshot -> canonical events, in
event-time order; usually one ticket snapshot, several for Zendesk audits, CSAT answers as feedback events).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from intake.domain.adapters.common import Snapshot, TicketRef, snapshot_of
from intake.domain.adapters.jira import jira_event, jira_events, jira_ref
from intake.domain.adapters.servicenow import servicenow_event, servicenow_events, servicenow_ref
from intake.domain.adapters.zendesk import zendesk_event, zendesk_events, zendesk_ref
from intake.domain.mapping import System, TicketMapping


@dataclass(frozen=True)
class Adapter:
    ref: Callable[[Any], TicketRef | None]
    events: Callable[[Any, TicketMapping, Snapshot | None], list[dict[str, Any]]]


ADAPTERS: Final[dict[System, Adapter]] = {
    "jira": Adapter(jira_ref, jira_events),
    "servicenow": Adapter(servicenow_ref, servicenow_events),
    "zendesk": Adapter(zendesk_ref, zendesk_events),
}

__all__ = [
    "ADAPTERS",
    "Adapter",
    "Snapshot",
    "TicketRef",
    "jira_event",
    "jira_events",
    "servicenow_event",
    "servicenow_events",
    "snapshot_of",
    "zendesk_event",
    "zendesk_events",
]
