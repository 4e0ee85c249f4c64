"""Jira Service Management webhooks -> `itsm.ticket.v1`.

Handles `jira:issue_created`, `jira:issue_updated` (with its `changelog`, and a `comment` when the update is
a comment) and `comment_created`, in the shape Jira Cloud documents. The event id is derived from the
payload, never from the delivery, so a redelivered webhook is a duplicate:
`<issue id>-created`, `<issue id>-change-<changelog id>`, `<issue id>-comment-<comment id>` (Jira sends both
`comment_created` and `jira:issue_updated` for one comment: they get the same id), else
`<issue id>-<webhook timestamp>`.

A public comment (`jsdPublic`) by the reporter or a portal customer is `customer_replied`, by anyone else
`agent_replied`; an internal comment is an `updated`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from intake.domain.acceptance import Rejected
from intake.domain.adapters.common import (
    CLOSED_STATUSES,
    STATUS_ACTIONS,
    as_object,
    epoch_millis,
    object_at,
    require_status,
    required_text,
    text_of,
    ticket_document,
    value_at,
)
from intake.domain.mapping import TicketMapping
from slm_shared.events import TicketAction, TicketStatus

HANDLED = ("jira:issue_created", "jira:issue_updated", "comment_created")
CATEGORY_STATUSES: dict[str, TicketStatus] = {"new": "new", "indeterminate": "in_progress", "done": "resolved"}


def _status(mapping: TicketMapping, status: Any) -> tuple[TicketStatus | None, str | None]:
    name = text_of(status)
    found = mapping.status_for(name)
    if found is None and isinstance(status, dict):
        category = text_of(value_at(status, "statusCategory.key"))
        found = CATEGORY_STATUSES.get(category or "")
    return found, name


def _person(value: Any) -> str | None:
    if not isinstance(value, dict):
        return text_of(value)
    return text_of(value.get("displayName")) or text_of(value.get("emailAddress")) or text_of(value.get("accountId"))


def _action(
    event: str, payload: dict[str, Any], fields: dict[str, Any], status: TicketStatus, mapping: TicketMapping
) -> tuple[TicketAction, dict[str, Any]]:
    extra: dict[str, Any] = {}
    if event == "jira:issue_created":
        return "created", extra
    items = value_at(payload, "changelog.items")
    status_change = next(
        (item for item in items if isinstance(item, dict) and item.get("field") == "status"), None
    ) if isinstance(items, list) else None
    if isinstance(items, list):
        extra["changed_fields"] = [str(item.get("field")) for item in items if isinstance(item, dict)][:50]
    if status_change is not None:
        before = mapping.status_for(text_of(status_change.get("fromString")))
        extra["upstream_previous_status"] = text_of(status_change.get("fromString"))
        if status in STATUS_ACTIONS and before != status:
            return STATUS_ACTIONS[status], extra
        if before in CLOSED_STATUSES and status not in CLOSED_STATUSES:
            return "reopened", extra
    comment = payload.get("comment")
    if isinstance(comment, dict):
        public = comment.get("jsdPublic") is not False
        extra["comment_public"] = public
        if not public:
            return "updated", extra
        author = as_object(comment.get("author"))
        reporter = as_object(fields.get("reporter"))
        by_customer = author.get("accountType") == "customer" or (
            author.get("accountId") is not None and author.get("accountId") == reporter.get("accountId")
        )
        return ("customer_replied" if by_customer else "agent_replied"), extra
    return "updated", extra


def _event_id(event: str, payload: dict[str, Any], issue_id: str) -> str:
    if event == "jira:issue_created":
        return f"{issue_id}-created"
    changelog_id = text_of(value_at(payload, "changelog.id"))
    if changelog_id is not None:
        return f"{issue_id}-change-{changelog_id}"
    comment_id = text_of(value_at(payload, "comment.id"))
    if comment_id is not None:
        return f"{issue_id}-comment-{comment_id}"
    return f"{issue_id}-{payload.get('timestamp')}"


def jira_event(payload: Any, mapping: TicketMapping) -> dict[str, Any]:
    """The canonical ticket event of one Jira webhook; raises `Rejected` if it cannot be one."""
    if not isinstance(payload, dict):
        raise Rejected("invalid_webhook", "body: a Jira webhook is a JSON object")
    event = required_text(payload, "webhookEvent", "Jira")
    if event not in HANDLED:
        raise Rejected("invalid_webhook", f"webhookEvent: {event[:64]!r} is not handled (one of {list(HANDLED)})")
    issue = object_at(payload, "issue", "Jira")
    fields = object_at(issue, "fields", "Jira")
    issue_id = required_text(issue, "id", "Jira")
    key = required_text(issue, "key", "Jira")
    time = epoch_millis(payload.get("timestamp"), "timestamp")
    status, upstream_status = _status(mapping, fields.get("status"))
    status = require_status(status, upstream_status, "jira")
    action, extra = _action(event, payload, fields, status, mapping)
    host = _host(issue.get("self"))
    upstream_priority = text_of(value_at(fields, "priority.name"))
    upstream_kind = text_of(value_at(fields, "issuetype.name"))
    return ticket_document(
        event_id=_event_id(event, payload, issue_id),
        source=f"jira://{host}" if host else "jira://unknown",
        time=time,
        ticket_id=key,
        action=action,
        status=status,
        mapping=mapping,
        kind=mapping.kind_for(upstream_kind),
        priority=mapping.priority_for(upstream_priority),
        service=text_of(value_at(payload, _rooted(mapping.service_field))),
        customer=text_of(value_at(payload, _rooted(mapping.customer_field))),
        assignment_group=None,
        assignee=_person(fields.get("assignee")),
        title=text_of(fields.get("summary")),
        attributes={
            "upstream_system": "jira",
            "upstream_status": upstream_status,
            "upstream_priority": upstream_priority,
            "upstream_kind": upstream_kind,
            "upstream_id": issue_id,
            "upstream_event": event,
            "project": text_of(value_at(fields, "project.key")),
            **extra,
        },
    )


def _host(self_link: Any) -> str | None:
    """The Jira site of `issue.self`; a value that is not a URL (`http://[x`) names no site, it fails nothing."""
    try:
        return urlsplit(str(self_link or "")).hostname
    except ValueError:
        return None


def _rooted(path: str | None) -> str | None:
    """Mapping paths name issue fields (`fields.components.0.name`) or start at the payload (`issue.`...)."""
    if path is None or path.startswith(("issue.", "user.", "comment.", "changelog.")):
        return path
    return f"issue.{path}"
