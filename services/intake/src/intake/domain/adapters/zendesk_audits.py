"""Zendesk's REST shapes -> canonical events: ticket audits and satisfaction ratings.

`GET /api/v2/tickets/{id}/audits` answers `{"audits": [...]}`, one audit per update of the ticket, each with
several `events` (`Create` and `Change` per field, `Comment`, `Notification`, `SatisfactionRating`, ...);
`GET /api/v2/satisfaction_ratings` answers `{"satisfaction_ratings": [...]}`. Both are what anyone
backfilling Zendesk history holds, so both are accepted by the webhook route and by `slm-intake import`.

Rules (docs/intake.md, "Upstream payload rules"):
- Audits are applied in `(created_at, id)` order onto the last snapshot of the ticket (or onto nothing):
  `Create` and `Change` events set `status`, `priority`, `type`, `subject`, `assignee_id`, `group_id`,
  `organization_id`, `requester_id`.
- An audit with `Create` events is one `created` snapshot. Otherwise a public `Comment` is a reply
  (`customer_replied` when its author is the ticket's requester, else `agent_replied`), then the field
  changes are one more snapshot (`resolved`, `reopened`, ... as for webhooks) with the state after the audit;
  an audit with only a private comment or other changes is one `updated`; one with neither (notifications,
  a rating alone) is no ticket snapshot. So an agent's public reply and a
  status change to solved in one audit are `agent_replied` (status before) then `resolved`, at the same time.
- Event ids: the audit's last ticket snapshot is `<ticket id>-<created_at in UTC>`, the id a trigger webhook
  (`<ticket id>-<ticket.updated_at>`) of the same update gets; a reply before it is `...-comment-<event id>`.
- A satisfaction rating `good` is score 1 of 1, `bad` 0 of 1 (`offered`/`unoffered` are no answer yet);
  its id is `<ticket id>-csat-<score>` in both shapes, so the same rating read from audits and from the
  ratings API is one answer, and a changed rating is a new answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from intake.domain.acceptance import Rejected, parse_rfc3339
from intake.domain.adapters.common import (
    CLOSED_STATUSES,
    STATUS_ACTIONS,
    Snapshot,
    as_object,
    feedback_document,
    require_status,
    text_of,
    ticket_document,
)

if TYPE_CHECKING:
    from datetime import datetime

    from intake.domain.mapping import TicketMapping
    from slm_shared.events import TicketAction, TicketStatus

# Audit field names -> the upstream ticket field they set.
AUDIT_FIELDS = {
    "status": "status",
    "priority": "priority",
    "type": "type",
    "subject": "subject",
    "assignee_id": "assignee_id",
    "group_id": "group_id",
    "organization_id": "organization_id",
    "requester_id": "requester_id",
}
RATING_SCORES = {"good": 1, "bad": 0}


def _known(value: Any) -> str | None:
    text = text_of(value)
    return None if text in (None, "0") else text


def _state_of(previous: Snapshot | None) -> dict[str, Any]:
    """The upstream fields as the last snapshot left them (kept in its attributes)."""
    if previous is None:
        return {}
    attributes = previous.attributes
    return {
        "status": attributes.get("upstream_status"),
        "priority": attributes.get("upstream_priority"),
        "type": attributes.get("upstream_kind"),
        "subject": previous.get("title"),
        "assignee_id": previous.get("assignee"),
        "group_id": previous.get("assignment_group"),
        "organization_id": None if previous.get("customer") == "unknown" else previous.get("customer"),
        "requester_id": attributes.get("upstream_requester"),
    }


def _snapshot(
    state: dict[str, Any],
    *,
    ticket_id: str,
    event_id: str,
    source: str,
    time: datetime,
    action: TicketAction,
    status: TicketStatus,
    mapping: TicketMapping,
    audit: dict[str, Any],
) -> dict[str, Any]:
    return ticket_document(
        event_id=event_id,
        source=source,
        time=time,
        ticket_id=ticket_id,
        action=action,
        status=status,
        mapping=mapping,
        kind=mapping.kind_for(text_of(state.get("type"))),
        priority=mapping.priority_for(text_of(state.get("priority"))),
        service=None,
        customer=_known(state.get("organization_id")),
        assignment_group=_known(state.get("group_id")),
        assignee=_known(state.get("assignee_id")),
        title=text_of(state.get("subject")),
        attributes={
            "upstream_system": "zendesk",
            "upstream_status": text_of(state.get("status")),
            "upstream_priority": text_of(state.get("priority")),
            "upstream_kind": text_of(state.get("type")),
            "upstream_id": ticket_id,
            "upstream_event": "audit",
            "upstream_audit": text_of(audit.get("id")),
            "upstream_requester": _known(state.get("requester_id")),
            "channel": text_of(as_object(audit.get("via")).get("channel")),
        },
    )


def _status(state: dict[str, Any], mapping: TicketMapping) -> TicketStatus | None:
    upstream = text_of(state.get("status"))
    return None if upstream is None else require_status(mapping.status_for(upstream), upstream, "zendesk")


def _change_action(before: TicketStatus | None, after: TicketStatus) -> TicketAction:
    if after in STATUS_ACTIONS and before != after:
        return STATUS_ACTIONS[after]
    if before in CLOSED_STATUSES and after not in CLOSED_STATUSES:
        return "reopened"
    return "updated"


def _ordered(audits: list[Any]) -> list[dict[str, Any]]:
    found = [audit for audit in audits if isinstance(audit, dict)]
    if len(found) != len(audits):
        raise Rejected("invalid_webhook", "audits: every audit is a JSON object")
    for audit in found:
        parse_rfc3339(audit.get("created_at"), "audit.created_at")  # a readable reason before any sorting
    return sorted(
        found, key=lambda audit: (parse_rfc3339(audit["created_at"], "audit.created_at"), str(audit.get("id")))
    )


def audit_events(
    audits: list[Any], mapping: TicketMapping, previous: Snapshot | None, source: str
) -> list[dict[str, Any]]:
    """One ticket's audits -> its canonical events in event-time order (snapshots and CSAT answers)."""
    state = _state_of(previous)
    service = previous.get("service") if previous is not None else None
    produced: list[dict[str, Any]] = []
    for audit in _ordered(audits):
        ticket_id = text_of(audit.get("ticket_id")) or (previous.ticket_id if previous is not None else None)
        if ticket_id is None:
            raise Rejected("invalid_webhook", "audit.ticket_id: missing from the Zendesk audit")
        time = parse_rfc3339(audit["created_at"], "audit.created_at")
        events = [as_object(event) for event in audit.get("events") or [] if isinstance(event, dict)]
        before_state = dict(state)
        before = _status(before_state, mapping)
        created = False
        changed = False
        for event in events:
            name = AUDIT_FIELDS.get(str(event.get("field_name")))
            if event.get("type") in ("Create", "Change") and name is not None:
                state[name] = event.get("value")
                created = created or event.get("type") == "Create"
                changed = True
        after = _status(state, mapping)
        if after is None:
            raise Rejected(
                "invalid_webhook",
                f"audit {str(audit.get('id'))[:32]}: no status, and intake holds no "
                "earlier snapshot of the ticket to take it from",
            )
        base_id = f"{ticket_id}-{time.isoformat()}"
        common: dict[str, Any] = {
            "ticket_id": ticket_id,
            "source": source,
            "time": time,
            "mapping": mapping,
            "audit": audit,
        }
        comments = [e for e in events if e.get("type") in ("Comment", "VoiceComment")]
        public = [e for e in comments if e.get("public") is not False]
        if created:
            produced.append(_snapshot(state, event_id=base_id, action="created", status=after, **common))
        else:
            for index, comment in enumerate(public):
                author = text_of(comment.get("author_id")) or text_of(audit.get("author_id"))
                by_requester = author is not None and author == _known(before_state.get("requester_id"))
                last = index == len(public) - 1 and not changed
                produced.append(
                    _snapshot(
                        before_state if changed else state,
                        event_id=base_id if last else f"{base_id}-comment-{text_of(comment.get('id'))}",
                        action="customer_replied" if by_requester else "agent_replied",
                        status=(before or after) if changed else after,
                        **common,
                    )
                )
            if changed or (comments and not public):  # an audit of notifications or a rating alone changes nothing
                produced.append(
                    _snapshot(state, event_id=base_id, action=_change_action(before, after), status=after, **common)
                )
        for event in events:
            if event.get("type") == "SatisfactionRating":
                answer = _rating(event, ticket_id, time, source, service or mapping.default_service)
                if answer is not None:
                    produced.append(answer)
    return produced


def _rating(rating: dict[str, Any], ticket_id: str, time: datetime, source: str, service: str) -> dict[str, Any] | None:
    score = (text_of(rating.get("score")) or "").lower()
    if score not in RATING_SCORES:
        return None  # offered / unoffered: asked, not answered
    return feedback_document(
        event_id=f"{ticket_id}-csat-{score}",
        source=source,
        time=time,
        ticket_id=ticket_id,
        service=service,
        score=RATING_SCORES[score],
        scale=1,
        comment=text_of(rating.get("comment")) or text_of(rating.get("body")),
    )


def rating_events(
    ratings: list[Any], mapping: TicketMapping, previous: Snapshot | None, source: str
) -> list[dict[str, Any]]:
    """`satisfaction_ratings` (the ratings API) -> CSAT answers, each linked to its `ticket_id`."""
    answers = []
    for rating in ratings:
        if not isinstance(rating, dict):
            raise Rejected("invalid_webhook", "satisfaction_ratings: every rating is a JSON object")
        ticket_id = text_of(rating.get("ticket_id"))
        if ticket_id is None:
            raise Rejected("invalid_webhook", "satisfaction_rating.ticket_id: missing")
        time = parse_rfc3339(rating.get("updated_at") or rating.get("created_at"), "satisfaction_rating.updated_at")
        service = previous.get("service") if previous is not None and previous.ticket_id == ticket_id else None
        answer = _rating(rating, ticket_id, time, source, service or mapping.default_service)
        if answer is not None:
            answers.append(answer)
    return answers
