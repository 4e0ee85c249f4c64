"""Jira (Cloud, Server/Data Center) and Jira Service Management webhooks -> `itsm.ticket.v1` / `itsm.feedback.v1`.

Handles `jira:issue_created`, `jira:issue_updated` (with its `changelog`, and a `comment` when the update is
a comment), `jira:issue_deleted` and `comment_created`. The event id is derived from the payload, never from
the delivery, so a redelivered webhook is a duplicate: `<issue id>-created`, `<issue id>-change-<changelog
id>`, `<issue id>-comment-<comment id>` (Jira sends both `comment_created` and `jira:issue_updated` for one
comment: they get the same id), `<issue id>-deleted`, else `<issue id>-<webhook timestamp>`. The history
import (`intake.domain.history.jira`) rebuilds the same payloads from `expand=changelog`, so its ids match.

Rules where Jira's payloads differ or leave things out (docs/intake.md, "Upstream payload rules"):
- A public comment (`jsdPublic` absent or true) by the reporter or a portal customer is `customer_replied`,
  by anyone else `agent_replied`; an internal comment is an `updated`.
- Jira Server/DC's `comment_created` carries no `issue`: the issue id is read from `comment.self`
  (`.../rest/api/2/issue/<id>/comment/<comment id>`); the key and the fields come from the last snapshot.
- A field the payload does not carry (an update without `fields.status`) is taken from the last canonical
  snapshot intake archived for the same issue id; the status may also come from the changelog's `toString`.
- A `timestamp` that is not epoch milliseconds falls back to the comment's or the issue's `updated`.
- A changelog item on the JSM `Satisfaction` field is a CSAT answer (1-5) as well.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from intake.domain.acceptance import Rejected
from intake.domain.adapters.common import (
    CLOSED_STATUSES,
    STATUS_ACTIONS,
    Snapshot,
    TicketRef,
    as_object,
    epoch_millis,
    feedback_document,
    is_epoch_millis,
    require_status,
    required_text,
    text_of,
    ticket_document,
    upstream_time,
    value_at,
)

if TYPE_CHECKING:
    from intake.domain.mapping import TicketMapping
    from slm_shared.events import TicketAction, TicketStatus

HANDLED = ("jira:issue_created", "jira:issue_updated", "jira:issue_deleted", "comment_created")
CATEGORY_STATUSES: dict[str, TicketStatus] = {"new": "new", "indeterminate": "in_progress", "done": "resolved"}
COMMENT_SELF = re.compile(r"/issue/(\d+)/comment/")
# The JSM customer satisfaction field as the changelog names it; its value is the 1-5 star rating.
SATISFACTION_FIELDS = frozenset({"satisfaction", "customer satisfaction"})
JSM_CSAT_SCALE = 5


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


def _identity(value: Any) -> str | None:
    """Who a user is across Cloud (`accountId`) and Server/DC (`key`, `name`)."""
    person = as_object(value)
    return text_of(person.get("accountId")) or text_of(person.get("key")) or text_of(person.get("name"))


def _changelog_items(payload: dict[str, Any]) -> list[dict[str, Any]]:
    items = value_at(payload, "changelog.items")
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _action(
    event: str, payload: dict[str, Any], reporter: str | None, status: TicketStatus, mapping: TicketMapping
) -> tuple[TicketAction, dict[str, Any]]:
    extra: dict[str, Any] = {}
    if event == "jira:issue_created":
        return "created", extra
    if event == "jira:issue_deleted":
        return "cancelled", extra
    items = _changelog_items(payload)
    status_change = next((item for item in items if item.get("field") == "status"), None)
    if items:
        extra["changed_fields"] = [str(item.get("field")) for item in items][:50]
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
        by_customer = author.get("accountType") == "customer" or (
            reporter is not None and _identity(author) == reporter
        )
        return ("customer_replied" if by_customer else "agent_replied"), extra
    return "updated", extra


def _event_id(event: str, payload: dict[str, Any], issue_id: str) -> str:
    if event == "jira:issue_created":
        return f"{issue_id}-created"
    if event == "jira:issue_deleted":
        return f"{issue_id}-deleted"
    changelog_id = text_of(value_at(payload, "changelog.id"))
    if changelog_id is not None:
        return f"{issue_id}-change-{changelog_id}"
    comment_id = text_of(value_at(payload, "comment.id"))
    if comment_id is not None:
        return f"{issue_id}-comment-{comment_id}"
    return f"{issue_id}-{str(payload.get('timestamp'))[:64]}"


def _issue_id(payload: dict[str, Any], issue: dict[str, Any]) -> str:
    found = text_of(issue.get("id"))
    if found is None:
        link = COMMENT_SELF.search(text_of(value_at(payload, "comment.self")) or "")
        found = link.group(1) if link else None
    if found is None:
        raise Rejected("invalid_webhook", "issue.id: missing from the Jira webhook (and no comment.self names it)")
    return found


def jira_ref(payload: Any) -> TicketRef | None:
    """The issue whose last snapshot this payload may need (its id from `issue` or `comment.self`)."""
    if not isinstance(payload, dict):
        return None
    try:
        return TicketRef("jira", _issue_id(payload, as_object(payload.get("issue"))))
    except Rejected:
        return None


def _time(payload: dict[str, Any], fields: dict[str, Any]) -> tuple[datetime, str | None]:
    """The webhook's `timestamp` (ms); else the comment's `updated` for a comment event, else the issue's."""
    stamp = payload.get("timestamp")
    if is_epoch_millis(stamp):
        return epoch_millis(stamp, "timestamp"), None
    comment = as_object(payload.get("comment"))
    fallbacks = [("comment.updated", comment.get("updated")), ("comment.created", comment.get("created"))]
    issue_times = [("issue.fields.updated", fields.get("updated")), ("issue.fields.created", fields.get("created"))]
    for name, value in (fallbacks + issue_times) if comment else issue_times:
        if value is not None:
            return upstream_time(value, name), name
    raise Rejected(
        "invalid_webhook",
        "timestamp: not milliseconds since the epoch, and the payload has no "
        "comment or issue `updated` time to fall back on",
    )


def _resolved_status(
    event: str,
    payload: dict[str, Any],
    fields: dict[str, Any],
    previous: Snapshot | None,
    mapping: TicketMapping,
    filled: list[str],
) -> tuple[TicketStatus, str | None]:
    """The status: the payload's, else the changelog's new status, else the last snapshot's.

    A comment on an issue intake has never seen is taken as `open` (a reply means the ticket is live).
    """
    if fields.get("status") is not None:
        status, upstream = _status(mapping, fields.get("status"))
        return require_status(status, upstream, "jira"), upstream
    change = next((item for item in _changelog_items(payload) if item.get("field") == "status"), None)
    if change is not None:
        upstream = text_of(change.get("toString"))
        return require_status(mapping.status_for(upstream), upstream, "jira"), upstream
    if previous is not None and previous.get("status") is not None:
        filled.append("status")
        return previous.get("status"), text_of(previous.attributes.get("upstream_status"))
    if event == "comment_created":
        filled.append("status:assumed_open")
        return "open", None
    raise Rejected(
        "invalid_webhook",
        "fields.status: absent from the payload, and intake archived no earlier snapshot of this issue to take it from",
    )


def jira_event(payload: Any, mapping: TicketMapping, previous: Snapshot | None = None) -> dict[str, Any]:
    """The canonical ticket event of one Jira webhook; raises `Rejected` if it cannot be one."""
    if not isinstance(payload, dict):
        raise Rejected("invalid_webhook", "body: a Jira webhook is a JSON object")
    event = required_text(payload, "webhookEvent", "Jira")
    if event not in HANDLED:
        raise Rejected("invalid_webhook", f"webhookEvent: {event[:64]!r} is not handled (one of {list(HANDLED)})")
    raw_issue = payload.get("issue")
    if raw_issue is None and event == "comment_created":
        raw_issue = {}  # Jira Server/DC: only `comment.self` names the issue
    if not isinstance(raw_issue, dict):
        raise Rejected("invalid_webhook", "issue: a Jira webhook must carry an object here")
    issue: dict[str, Any] = raw_issue
    fields = as_object(issue.get("fields"))
    issue_id = _issue_id(payload, issue)
    filled: list[str] = []
    key = text_of(issue.get("key"))
    if key is None:
        key = previous.ticket_id if previous is not None else issue_id
        filled.append("key" if previous is not None else "key:issue_id")
    time, time_from = _time(payload, fields)
    status, upstream_status = _resolved_status(event, payload, fields, previous, mapping, filled)
    if event == "jira:issue_deleted":
        status = "cancelled"
    reporter = _identity(fields.get("reporter")) or (
        text_of(previous.attributes.get("upstream_reporter")) if previous is not None else None
    )
    action, extra = _action(event, payload, reporter, status, mapping)
    host = _host(issue.get("self")) or _host(value_at(payload, "comment.self"))

    def carried(name: str, present: bool, value: Any) -> Any:
        """The payload's value where it carries the field, else the last snapshot's (noted in attributes)."""
        if present or previous is None:
            return value
        if previous.get(name) is not None:
            filled.append(name)
        return previous.get(name) if previous.get(name) is not None else value

    upstream_priority = text_of(value_at(fields, "priority.name"))
    upstream_kind = text_of(value_at(fields, "issuetype.name"))
    service = text_of(value_at(payload, _rooted(mapping.service_field)))
    customer = text_of(value_at(payload, _rooted(mapping.customer_field)))
    return ticket_document(
        event_id=_event_id(event, payload, issue_id),
        source=f"jira://{host}" if host else "jira://unknown",
        time=time,
        ticket_id=key,
        action=action,
        status=status,
        mapping=mapping,
        kind=carried("kind", fields.get("issuetype") is not None, mapping.kind_for(upstream_kind)),
        priority=carried("priority", fields.get("priority") is not None, mapping.priority_for(upstream_priority)),
        service=carried("service", service is not None, service),
        customer=carried("customer", customer is not None, customer),
        assignment_group=carried("assignment_group", False, None),
        assignee=carried("assignee", "assignee" in fields, _person(fields.get("assignee"))),
        title=carried("title", fields.get("summary") is not None, text_of(fields.get("summary"))),
        attributes={
            "upstream_system": "jira",
            "upstream_status": upstream_status,
            "upstream_priority": upstream_priority or _previous_attribute(previous, "upstream_priority"),
            "upstream_kind": upstream_kind or _previous_attribute(previous, "upstream_kind"),
            "upstream_id": issue_id,
            "upstream_event": event,
            "upstream_reporter": reporter,
            "project": text_of(value_at(fields, "project.key")) or _previous_attribute(previous, "project"),
            "time_from": time_from,
            "upstream_timestamp": str(payload.get("timestamp"))[:64] if time_from else None,
            "filled_from_snapshot": filled or None,
            **extra,
        },
    )


def jira_feedback(payload: Any, ticket: dict[str, Any]) -> list[dict[str, Any]]:
    """CSAT answers a Jira update carries: a changelog item on JSM's Satisfaction field (1-5 stars)."""
    if not isinstance(payload, dict):
        return []
    answers = []
    for item in _changelog_items(payload):
        if str(item.get("field", "")).strip().lower() not in SATISFACTION_FIELDS:
            continue
        rating = text_of(item.get("toString")) or text_of(item.get("to"))
        if rating is None or not rating.isdigit():
            continue  # a rating removed, or a value that is no rating
        data = ticket["data"]
        answers.append(
            feedback_document(
                event_id=f"{data['attributes']['upstream_id']}-csat-{text_of(value_at(payload, 'changelog.id'))}",
                source=ticket["source"],
                time=datetime.fromisoformat(ticket["time"]),
                ticket_id=data["ticket_id"],
                service=data["service"],
                score=min(int(rating), JSM_CSAT_SCALE),
                scale=JSM_CSAT_SCALE,
                comment=None,
            )
        )
    return answers


def jira_events(payload: Any, mapping: TicketMapping, previous: Snapshot | None = None) -> list[dict[str, Any]]:
    """Every canonical event of one Jira webhook: the ticket snapshot, then any CSAT answer it carries."""
    ticket = jira_event(payload, mapping, previous)
    return [ticket, *jira_feedback(payload, ticket)]


def _previous_attribute(previous: Snapshot | None, name: str) -> Any:
    return None if previous is None else previous.attributes.get(name)


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
