"""What the three webhook adapters share: reading upstream payloads and building the canonical event."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from intake.domain.acceptance import Rejected
from slm_shared.events import FEEDBACK_EVENT, TICKET_EVENT, TicketAction, TicketStatus

if TYPE_CHECKING:
    from intake.domain.mapping import TicketMapping

CLOSED_STATUSES = frozenset({"resolved", "closed", "cancelled"})
# The statuses whose arrival is itself the action (DESIGN.md 2.1).
STATUS_ACTIONS: dict[TicketStatus, TicketAction] = {
    "resolved": "resolved",
    "closed": "closed",
    "cancelled": "cancelled",
}


# Jira writes `2026-05-06T19:00:00.000+0800` (no colon in the offset); RFC 3339 and ServiceNow's UTC
# `YYYY-MM-DD HH:MM:SS` are the other upstream shapes.
UPSTREAM_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|z|[+-]\d{2}:?\d{2})")
# Fields a payload may leave out that the last archived snapshot of the same ticket supplies.
SNAPSHOT_FIELDS = ("status", "priority", "kind", "service", "customer", "assignment_group", "assignee", "title")


@dataclass(frozen=True)
class Snapshot:
    """The last canonical ticket snapshot intake holds for an upstream ticket: its ticket id and `data`."""

    ticket_id: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def attributes(self) -> dict[str, Any]:
        return as_object(self.data.get("attributes"))

    def get(self, name: str) -> Any:
        return self.data.get(name)


@dataclass(frozen=True)
class TicketRef:
    """Which archived ticket a payload is about: `<system>:<upstream id>` (Jira issue id, sys_id, ticket id)."""

    system: str
    upstream_id: str

    @property
    def key(self) -> str:
        return f"{self.system}:{self.upstream_id}"


def snapshot_of(document: dict[str, Any]) -> Snapshot:
    """The snapshot a canonical ticket event leaves for the next change of the same ticket."""
    data = as_object(document.get("data"))
    return Snapshot(str(data.get("ticket_id")), data)


def upstream_time(value: Any, field: str) -> datetime:
    """An upstream timestamp with an offset (Jira's `+0800` form too); refused without one."""
    text = text_of(value)
    if text is None or UPSTREAM_TIME.fullmatch(text) is None:
        raise Rejected("invalid_webhook", f"{field}: {str(value)[:64]!r} is not a timestamp with an offset")
    try:
        parsed = datetime.fromisoformat(text.upper().replace(" ", "T"))
    except ValueError as error:
        raise Rejected("invalid_webhook", f"{field}: {text[:64]!r} is not a valid date/time") from error
    return parsed.astimezone(UTC)


def is_epoch_millis(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and 0 <= value < 253402300800000


def value_at(payload: Any, path: str | None) -> Any:
    """Follow a dotted path (`fields.components.0.name`); None where any step is missing."""
    if path is None:
        return None
    current = payload
    for step in path.split("."):
        if isinstance(current, dict):
            current = current.get(step)
        elif isinstance(current, list) and step.isdigit() and int(step) < len(current):
            current = current[int(step)]
        else:
            return None
    return current


def text_of(value: Any) -> str | None:
    """A readable string from a scalar or an upstream reference object (display value, name, id)."""
    if isinstance(value, dict):
        for field in ("display_value", "displayName", "name", "value", "key", "id"):
            if value.get(field) not in (None, ""):
                return text_of(value[field])
        return None
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip()
    return text or None


def as_object(value: Any) -> dict[str, Any]:
    """The value if it is a JSON object, else an empty one (upstream payloads omit or null fields)."""
    return value if isinstance(value, dict) else {}


def object_at(payload: Any, path: str, system: str) -> dict[str, Any]:
    value = value_at(payload, path)
    if not isinstance(value, dict):
        raise Rejected("invalid_webhook", f"{path}: a {system} webhook must carry an object here")
    return value


def required_text(payload: Any, path: str, system: str) -> str:
    text = text_of(value_at(payload, path))
    if text is None:
        raise Rejected("invalid_webhook", f"{path}: missing from the {system} webhook")
    return text


def epoch_millis(value: Any, field: str) -> datetime:
    if not is_epoch_millis(value):
        raise Rejected("invalid_webhook", f"{field}: must be milliseconds since the epoch")
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def require_status(status: TicketStatus | None, upstream: str | None, system: str) -> TicketStatus:
    if status is None:
        raise Rejected(
            "unmapped_value",
            f"status: upstream status {upstream!r} has no mapping; add it with PUT /v1/mappings/{system}",
        )
    return status


def ticket_document(
    *,
    event_id: str,
    source: str,
    time: datetime,
    ticket_id: str,
    action: TicketAction,
    status: TicketStatus,
    mapping: TicketMapping,
    kind: str,
    priority: str,
    service: str | None,
    customer: str | None,
    assignment_group: str | None,
    assignee: str | None,
    title: str | None,
    attributes: dict[str, Any],
) -> dict[str, Any]:
    """The canonical `itsm.ticket.v1` CloudEvent a webhook becomes, before intake's acceptance rules."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": mapping.source or source,
        "type": TICKET_EVENT,
        "time": time.isoformat(),
        "subject": ticket_id,
        "datacontenttype": "application/json",
        "data": {
            "ticket_id": ticket_id,
            "action": action,
            "kind": kind,
            "service": service or mapping.default_service,
            "customer": customer or mapping.default_customer,
            "priority": priority,
            "status": status,
            "assignment_group": assignment_group,
            "assignee": assignee,
            "title": title[:4096] if title else None,
            "attributes": {key: value for key, value in attributes.items() if value is not None},
        },
    }


def feedback_document(
    *,
    event_id: str,
    source: str,
    time: datetime,
    ticket_id: str,
    service: str,
    score: int,
    scale: int,
    comment: str | None,
) -> dict[str, Any]:
    """The canonical `itsm.feedback.v1` CloudEvent of one CSAT answer, linked to its ticket by `ticket_id`."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": FEEDBACK_EVENT,
        "time": time.isoformat(),
        "subject": ticket_id,
        "datacontenttype": "application/json",
        "data": {
            "ticket_id": ticket_id,
            "service": service,
            "score": score,
            "scale": scale,
            "comment": comment[:4096] if comment else None,
        },
    }
