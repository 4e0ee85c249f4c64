"""Zendesk ticket webhooks -> `itsm.ticket.v1`.

Four shapes, all from Zendesk's documentation:
- event-subscribed webhooks (`"type": "zen:event-type:ticket.<event>"`, with `id`, `time`, `account_id`,
  `detail` = the ticket, `event` = what changed); the event id is Zendesk's own event `id`, which a
  retried delivery keeps;
- trigger/automation webhooks with the JSON body intake documents (`{"ticket": {...}, "event": ...}` built
  from placeholders); the event id is `<ticket id>-<updated_at>`;
- the REST API's ticket audits (`{"audit": ...}`, `{"audits": [...]}` of one ticket) and satisfaction
  ratings (`{"satisfaction_rating": ...}`, `{"satisfaction_ratings": [...]}`): see `zendesk_audits`.

`ticket.comment_added` with a public comment is `agent_replied` when the author is staff, else
`customer_replied`; a private note is an `updated`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from intake.domain.acceptance import Rejected, parse_rfc3339
from intake.domain.adapters.common import (
    CLOSED_STATUSES,
    STATUS_ACTIONS,
    Snapshot,
    TicketRef,
    as_object,
    require_status,
    required_text,
    text_of,
    ticket_document,
    value_at,
)
from intake.domain.adapters.zendesk_audits import audit_events, rating_events

if TYPE_CHECKING:
    from intake.domain.mapping import TicketMapping
    from slm_shared.events import TicketAction, TicketStatus

EVENT_PREFIX = "zen:event-type:ticket."


def _action(kind: str, payload: dict[str, Any], status: TicketStatus, mapping: TicketMapping) -> TicketAction:
    event = as_object(payload.get("event"))
    if kind in ("created", "ticket.created"):
        return "created"
    if kind in ("soft_deleted", "permanently_deleted"):
        return "cancelled"
    comment = event.get("comment", payload.get("comment"))
    if kind == "comment_added" or isinstance(comment, dict):
        if as_object(comment).get("is_public") is False:
            return "updated"
        staff = value_at(comment, "author.is_staff")
        return "agent_replied" if staff is True else "customer_replied"
    previous = event.get("previous")
    previous = previous.get("status") if isinstance(previous, dict) else previous
    before = mapping.status_for(text_of(previous)) if kind == "status_changed" else None
    if status in STATUS_ACTIONS and before != status:
        return STATUS_ACTIONS[status]
    if before in CLOSED_STATUSES and status not in CLOSED_STATUSES:
        return "reopened"
    return "updated"


def _audits(payload: dict[str, Any]) -> list[Any] | None:
    if isinstance(payload.get("audits"), list):
        return list(payload["audits"])
    return [payload["audit"]] if "audit" in payload else None


def _ratings(payload: dict[str, Any]) -> list[Any] | None:
    if isinstance(payload.get("satisfaction_ratings"), list):
        return list(payload["satisfaction_ratings"])
    return [payload["satisfaction_rating"]] if "satisfaction_rating" in payload else None


def zendesk_ref(payload: Any) -> TicketRef | None:
    """The ticket whose last snapshot this payload may need (audits and ratings carry only changes)."""
    if not isinstance(payload, dict):
        return None
    items = _audits(payload) or _ratings(payload) or []
    ids = {text_of(as_object(item).get("ticket_id")) for item in items} - {None}
    if len(ids) == 1:
        return TicketRef("zendesk", str(ids.pop()))
    ticket = payload.get("detail", payload.get("ticket"))
    ticket_id = text_of(as_object(ticket).get("id"))
    return TicketRef("zendesk", ticket_id) if ticket_id else None


def zendesk_source(payload: dict[str, Any], mapping: TicketMapping) -> str:
    account = text_of(payload.get("account_id")) or text_of(payload.get("account"))
    return mapping.source or f"zendesk://{account or 'unknown'}"


def zendesk_events(payload: Any, mapping: TicketMapping, previous: Snapshot | None = None) -> list[dict[str, Any]]:
    """Every canonical event of one Zendesk payload: one for a webhook, several for audits or ratings."""
    if isinstance(payload, dict):
        audits = _audits(payload)
        if audits is not None:
            ids = {text_of(as_object(audit).get("ticket_id")) for audit in audits}
            if len(ids) > 1:
                raise Rejected(
                    "invalid_webhook", "audits: one ticket's audits per request (slm-intake import takes many tickets)"
                )
            return audit_events(audits, mapping, previous, zendesk_source(payload, mapping))
        ratings = _ratings(payload)
        if ratings is not None:
            return rating_events(ratings, mapping, previous, zendesk_source(payload, mapping))
    return [zendesk_event(payload, mapping)]


def zendesk_event(payload: Any, mapping: TicketMapping) -> dict[str, Any]:
    """The canonical ticket event of one Zendesk webhook; raises `Rejected` if it cannot be one."""
    if not isinstance(payload, dict):
        raise Rejected("invalid_webhook", "body: a Zendesk webhook is a JSON object")
    event_type = text_of(payload.get("type"))
    if event_type is not None:
        if not event_type.startswith(EVENT_PREFIX):
            raise Rejected("invalid_webhook", f"type: {event_type[:64]!r} is not a Zendesk ticket event")
        ticket = payload.get("detail")
        kind = event_type.removeprefix(EVENT_PREFIX)
        event_id = required_text(payload, "id", "Zendesk")
        time = parse_rfc3339(payload.get("time"), "time")
        source = f"zendesk://{text_of(payload.get('account_id')) or 'unknown'}"
    else:
        ticket = payload.get("ticket")
        kind = (text_of(payload.get("event")) or "updated").lower()
        if not isinstance(ticket, dict):
            raise Rejected("invalid_webhook", "type/ticket: neither a Zendesk event nor a trigger body")
        time = parse_rfc3339(ticket.get("updated_at"), "ticket.updated_at")
        event_id = f"{required_text(ticket, 'id', 'Zendesk')}-{time.isoformat()}"
        source = f"zendesk://{text_of(payload.get('account')) or 'unknown'}"
    if not isinstance(ticket, dict):
        raise Rejected("invalid_webhook", "detail: a Zendesk ticket event must carry the ticket")
    ticket_id = required_text(ticket, "id", "Zendesk")
    upstream_status = text_of(ticket.get("status"))
    status = require_status(mapping.status_for(upstream_status), upstream_status, "zendesk")
    upstream_priority = text_of(ticket.get("priority"))
    upstream_kind = text_of(ticket.get("type"))
    root = {"detail": ticket, "ticket": ticket, **{k: v for k, v in payload.items() if k not in ("detail", "ticket")}}
    return ticket_document(
        event_id=event_id,
        source=source,
        time=time,
        ticket_id=ticket_id,
        action=_action(kind, payload, status, mapping),
        status=status,
        mapping=mapping,
        kind=mapping.kind_for(upstream_kind),
        priority=mapping.priority_for(upstream_priority),
        service=text_of(value_at(root, mapping.service_field)),
        customer=_known(text_of(value_at(root, mapping.customer_field)) or text_of(ticket.get("organization"))),
        assignment_group=_known(text_of(ticket.get("group_id")) or text_of(ticket.get("group"))),
        assignee=_known(text_of(ticket.get("assignee_id")) or text_of(ticket.get("assignee"))),
        title=text_of(ticket.get("subject")) or text_of(ticket.get("title")),
        attributes={
            "upstream_system": "zendesk",
            "upstream_status": upstream_status,
            "upstream_priority": upstream_priority,
            "upstream_kind": upstream_kind,
            "upstream_id": ticket_id,
            "upstream_requester": _known(text_of(ticket.get("requester_id"))),
            "upstream_event": event_type or kind,
            "channel": text_of(value_at(ticket, "via.channel")),
            "tags": [str(tag) for tag in ticket.get("tags", [])][:50] if isinstance(ticket.get("tags"), list) else None,
        },
    )


def _known(value: str | None) -> str | None:
    """Zendesk sends "0" for an unset id."""
    return None if value in (None, "0") else value
