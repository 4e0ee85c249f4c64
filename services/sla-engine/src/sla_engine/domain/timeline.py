"""A ticket's timeline: its full snapshots ordered by event time (DESIGN.md sections 2.1 and 4).

Rules:
- Snapshots are ordered by event `time`; ties keep arrival order (`arrival`, lower first).
- A snapshot delivered twice (same `event_id`) counts once: the copy that arrived first is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

# Canonical vocabulary of `itsm.ticket.v1` (DESIGN.md 2.1); adapters map upstream values onto these.
TICKET_ACTIONS: Final = (
    "created",
    "updated",
    "agent_replied",
    "customer_replied",
    "resolved",
    "reopened",
    "closed",
    "cancelled",
)
TICKET_STATUSES: Final = (
    "new",
    "open",
    "in_progress",
    "pending_customer",
    "pending_vendor",
    "on_hold",
    "resolved",
    "closed",
    "cancelled",
)
TICKET_KINDS: Final = ("incident", "service_request", "problem", "change")


@dataclass(frozen=True)
class TicketSnapshot:
    """The full ticket after one change, as an `itsm.ticket.v1` event carried it."""

    event_id: str
    time: datetime
    arrival: int
    ticket_id: str
    action: str
    kind: str
    status: str
    priority: str
    service: str
    customer: str
    assignment_group: str | None = None
    assignee: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise ValueError(f"snapshot {self.event_id}: time must be timezone-aware")

    def field_value(self, name: str) -> str | None:
        """A matchable field: a snapshot attribute, or `attributes.<key>` (as text)."""
        if name.startswith("attributes."):
            value = self.attributes.get(name.removeprefix("attributes."))
            return None if value is None else str(value)
        value = getattr(self, name, None)
        return value if isinstance(value, str) else None


def ordered_timeline(snapshots: Iterable[TicketSnapshot]) -> list[TicketSnapshot]:
    """Sort by (time, arrival) and drop redelivered snapshots, keeping each event id's first arrival."""
    first: dict[str, TicketSnapshot] = {}
    for snapshot in snapshots:
        kept = first.get(snapshot.event_id)
        if kept is None or snapshot.arrival < kept.arrival:
            first[snapshot.event_id] = snapshot
    return sorted(first.values(), key=lambda s: (s.time, s.arrival))
