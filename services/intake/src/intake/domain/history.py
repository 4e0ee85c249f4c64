"""History import, pure: a vendor's export of one ticket -> the webhook payloads of each of its changes.

`slm-intake import` rebuilds every ticket's timeline from what the vendors' APIs export, as the payloads their
webhooks would have sent at each change, then maps them with the same adapters (and so the same event ids:
a later webhook of the same change is a duplicate) and the same acceptance rules as live events.

- Jira: an issue from `/rest/api/2/search?expand=changelog` (or `/issue/{key}?expand=changelog`). The state
  before the first change is the current `fields` with every changelog item undone (`from`/`fromString`),
  newest first; then `jira:issue_created` at `fields.created`, one `jira:issue_updated` per history
  (`changelog.id` = the history id, as the webhook carries it) and one `comment_created` per comment of
  `fields.comment.comments`, in event-time order.
- ServiceNow: a Table API record with its `sys_audit` rows (`documentkey` = the record's sys_id). Rows are
  grouped by `record_checkpoint` (the record's `sys_mod_count` after that update); undoing them from the
  current record (`oldvalue`) gives the record as inserted (mod count 0, `sys_created_on`); each checkpoint
  is then one update with `previous.state`, timed at its rows' `sys_created_on`. A `comments` row is a reply
  (by the caller when the audit's `user` is the caller's), a `work_notes` row an internal note.
- Zendesk: a ticket's audits (`/api/v2/tickets/{id}/audits`) and its satisfaction ratings, as they are.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from intake.domain.acceptance import Rejected
from intake.domain.adapters.common import as_object, text_of, upstream_time

if TYPE_CHECKING:
    from collections.abc import Iterator

    from intake.domain.mapping import System

# Changelog field -> (issue field, how the value is written in `fields`).
JIRA_FIELDS: dict[str, str] = {
    "status": "status",
    "priority": "priority",
    "issuetype": "issuetype",
    "assignee": "assignee",
    "summary": "summary",
    "component": "components",
    "reporter": "reporter",
}
JOURNAL_FIELDS = frozenset({"comments", "work_notes"})
GLIDE = "%Y-%m-%d %H:%M:%S"


def _jira_value(field: str, text: str | None, raw: Any) -> Any:
    """A changelog value as the issue's `fields` hold it."""
    if field == "summary":
        return text
    if field == "components":
        return [{"name": text}] if text else []
    if text is None and raw is None:
        return None
    if field in ("assignee", "reporter"):
        return {"displayName": text, "accountId": text_of(raw), "key": text_of(raw)}
    return {"name": text, "id": text_of(raw)}


def _millis(value: Any, field: str) -> int:
    return int(upstream_time(value, field).timestamp() * 1000)


def jira_payloads(issue: Any) -> list[dict[str, Any]]:
    """One exported Jira issue -> its webhook payloads in event-time order."""
    if not isinstance(issue, dict) or not isinstance(issue.get("fields"), dict):
        raise Rejected("invalid_webhook", "issue.fields: an exported Jira issue carries its fields")
    fields: dict[str, Any] = issue["fields"]
    histories = [h for h in as_object(issue.get("changelog")).get("histories") or [] if isinstance(h, dict)]
    histories.sort(key=lambda h: (_millis(h.get("created"), "changelog.histories.created"), str(h.get("id"))))
    # Shallow copies throughout: a change replaces a field's value, it never edits one in place.
    state = {name: value for name, value in fields.items() if name != "comment"}
    for history in reversed(histories):
        for item in history.get("items") or []:
            target = JIRA_FIELDS.get(str(as_object(item).get("field", "")).lower())
            if target is not None:
                state[target] = _jira_value(target, text_of(item.get("fromString")), item.get("from"))
    identity = {"id": issue.get("id"), "key": issue.get("key"), "self": issue.get("self")}
    created_at = _millis(fields.get("created"), "issue.fields.created")
    changes: list[tuple[int, int, str, dict[str, Any]]] = [(created_at, 0, "", {"kind": "created"})]
    changes += [
        (
            _millis(h.get("created"), "changelog.histories.created"),
            1,
            str(h.get("id")),
            {"kind": "history", "history": h},
        )
        for h in histories
    ]
    comments = [c for c in as_object(fields.get("comment")).get("comments") or [] if isinstance(c, dict)]
    changes += [
        (_millis(c.get("created"), "comment.created"), 2, str(c.get("id")), {"kind": "comment", "comment": c})
        for c in comments
    ]
    payloads = []
    for at, _, _, change in sorted(changes, key=lambda c: (c[0], c[1], c[2])):
        if change["kind"] == "history":
            history = change["history"]
            for item in history.get("items") or []:
                target = JIRA_FIELDS.get(str(as_object(item).get("field", "")).lower())
                if target is not None:
                    state[target] = _jira_value(target, text_of(item.get("toString")), item.get("to"))
            payloads.append(
                {
                    "webhookEvent": "jira:issue_updated",
                    "timestamp": at,
                    "user": history.get("author"),
                    "issue": {**identity, "fields": dict(state)},
                    "changelog": {"id": history.get("id"), "items": history.get("items") or []},
                }
            )
        elif change["kind"] == "comment":
            payloads.append(
                {
                    "webhookEvent": "comment_created",
                    "timestamp": at,
                    "comment": change["comment"],
                    "issue": {**identity, "fields": dict(state)},
                }
            )
        else:
            payloads.append(
                {"webhookEvent": "jira:issue_created", "timestamp": at, "issue": {**identity, "fields": dict(state)}}
            )
    return payloads


def _glide(value: Any, field: str) -> datetime:
    text = text_of(value.get("value") if isinstance(value, dict) else value)
    try:
        return datetime.strptime(text or "", GLIDE).replace(tzinfo=UTC)
    except ValueError:
        return upstream_time(text, field)


def _checkpoint(row: dict[str, Any]) -> int:
    value = text_of(row.get("record_checkpoint"))
    if value is None or not value.isdigit():
        raise Rejected("invalid_webhook", f"sys_audit.record_checkpoint: {str(value)[:32]!r} is not a counter")
    return int(value)


def servicenow_payloads(record: Any, audit: list[Any], instance: str | None) -> list[dict[str, Any]]:
    """One exported ServiceNow record and its `sys_audit` rows -> its outbound-REST payloads in time order."""
    if not isinstance(record, dict):
        raise Rejected("invalid_webhook", "record: an exported ServiceNow record is a JSON object")
    if text_of(record.get("sys_class_name")) == "asmt_assessment_instance" or "trigger_id" in record:
        return [{"record": record, "instance": instance}]  # a survey answer: no history of its own
    rows = [row for row in audit if isinstance(row, dict) and str(row.get("fieldname", "")) != ""]
    by_checkpoint: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_checkpoint[_checkpoint(row)].append(row)
    state = {name: copy.deepcopy(value) for name, value in record.items() if name != "sys_audit"}
    for checkpoint in sorted(by_checkpoint, reverse=True):
        if checkpoint == 0:
            continue  # the insert's own values are the state as inserted
        for row in by_checkpoint[checkpoint]:
            if row["fieldname"] not in JOURNAL_FIELDS:
                state[str(row["fieldname"])] = row.get("oldvalue")
    created = _glide(record.get("sys_created_on"), "sys_created_on")
    state.update(sys_mod_count="0", sys_updated_on=created.strftime(GLIDE))
    payloads = [{"record": copy.deepcopy(state), "operation": "insert", "instance": instance}]
    caller = {text_of(as_object(record.get("caller_id")).get(k)) for k in ("value", "display_value")}
    caller |= {text_of(record.get("caller_id"))} if not isinstance(record.get("caller_id"), dict) else set()
    caller.discard(None)
    for checkpoint in sorted(c for c in by_checkpoint if c > 0):
        group = by_checkpoint[checkpoint]
        before = state.get("state")
        for row in group:
            if row["fieldname"] not in JOURNAL_FIELDS:
                state[str(row["fieldname"])] = row.get("newvalue")
        at = max(_glide(row.get("sys_created_on"), "sys_audit.sys_created_on") for row in group)
        state.update(sys_mod_count=str(checkpoint), sys_updated_on=at.strftime(GLIDE))
        payload: dict[str, Any] = {
            "record": copy.deepcopy(state),
            "operation": "update",
            "instance": instance,
            "previous": {"state": before},
        }
        journal = next((row for row in group if row["fieldname"] == "comments"), None)
        if journal is not None:
            payload["comment"] = {"is_caller": text_of(journal.get("user")) in caller, "visible_to_customer": True}
        elif any(row["fieldname"] == "work_notes" for row in group):
            payload["comment"] = {"is_caller": False, "visible_to_customer": False}
        payloads.append(payload)
    return payloads


def zendesk_payloads(
    ticket_id: str, audits: list[Any], ratings: list[Any], account: str | None
) -> list[dict[str, Any]]:
    """One Zendesk ticket's audits, then its satisfaction ratings, as the shapes the adapter takes."""
    payloads: list[dict[str, Any]] = []
    if audits:
        payloads.append(
            {
                "account_id": account,
                "audits": [
                    {**audit, "ticket_id": audit.get("ticket_id", ticket_id)}
                    for audit in audits
                    if isinstance(audit, dict)
                ],
            }
        )
    if ratings:
        payloads.append({"account_id": account, "satisfaction_ratings": ratings})
    return payloads


def _list(document: Any, *names: str) -> list[Any] | None:
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        for name in names:
            if isinstance(document.get(name), list):
                return list(document[name])
    return None


def export_records(system: System, document: Any) -> Iterator[Any]:
    """The tickets of one export document (a page, a whole export, or one ticket), each with its history.

    Jira: `{"issues": [...]}`, a list, or one issue. ServiceNow: `{"result"|"records": [...]}` (each record
    may carry its `sys_audit` rows), a list, or one record; rows in a top-level `sys_audit` list are joined
    to their record by `documentkey`. Zendesk: `{"tickets": [...]}` (each may carry `audits` and
    `satisfaction_ratings`), with top-level `audits` / `satisfaction_ratings` joined by `ticket_id`; audits
    or ratings of tickets the document does not list are tickets of their own.
    """
    if system == "jira":
        issues = _list(document, "issues")
        yield from issues if issues is not None else [document]
    elif system == "servicenow":
        records = _list(document, "result", "records")
        records = records if records is not None else [document]
        audit: dict[str, list[Any]] = defaultdict(list)
        for row in (_list(document, "sys_audit") if isinstance(document, dict) else None) or []:
            audit[str(as_object(row).get("documentkey"))].append(row)
        for record in records:
            if isinstance(record, dict) and audit:
                sys_id = text_of(as_object(record.get("sys_id")).get("value")) or text_of(record.get("sys_id"))
                record = {**record, "sys_audit": [*(record.get("sys_audit") or []), *audit.pop(str(sys_id), [])]}
            yield record
    else:
        tickets = _list(document, "tickets")
        if tickets is None and isinstance(document, dict) and "id" in document:
            tickets = [document]
        joined: dict[str, dict[str, Any]] = {}
        for ticket in tickets or []:
            joined[str(as_object(ticket).get("id"))] = dict(as_object(ticket))
        for name in ("audits", "satisfaction_ratings"):
            for item in (_list(document, name) if isinstance(document, dict) else None) or []:
                ticket_id = str(as_object(item).get("ticket_id"))
                entry = joined.setdefault(ticket_id, {"id": ticket_id})
                entry[name] = [*(entry.get(name) or []), item]
        yield from joined.values()


def record_payloads(system: System, record: Any, *, instance: str | None, account: str | None) -> list[dict[str, Any]]:
    """One exported ticket -> the payloads of its changes, for the system's adapter."""
    if system == "jira":
        return jira_payloads(record)
    if system == "servicenow":
        audit = as_object(record).get("sys_audit") if isinstance(record, dict) else None
        return servicenow_payloads(record, audit if isinstance(audit, list) else [], instance)
    ticket = as_object(record)
    ticket_id = text_of(ticket.get("id"))
    if ticket_id is None:
        raise Rejected("invalid_webhook", "ticket.id: an exported Zendesk ticket carries its id")
    audits, ratings = ticket.get("audits") or [], ticket.get("satisfaction_ratings") or []
    if not isinstance(audits, list) or not isinstance(ratings, list):
        raise Rejected("invalid_webhook", "audits/satisfaction_ratings: must be lists")
    return zendesk_payloads(ticket_id, audits, ratings, account)


def record_ref(system: System, record: Any) -> str | None:
    """The upstream id a record is about (for the import's own last-snapshot memory and its summary)."""
    item = as_object(record)
    if system == "servicenow":
        value = item.get("trigger_id") if "trigger_id" in item else item.get("sys_id")
        return text_of(as_object(value).get("value")) if isinstance(value, dict) else text_of(value)
    return text_of(item.get("id"))
