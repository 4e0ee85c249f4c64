"""ServiceNow incident (and other task) records -> `itsm.ticket.v1`.

Accepts what a Business Rule's outbound REST message sends: the record as the Table API serialises it
(fields as plain values, or `{"value", "display_value"}` pairs with `sysparm_display_value=all`), either
at the top level or under `record` (or `result`), optionally with `operation` (`insert`/`update`, from
`current.operation()`), `previous` (e.g. `{"state": "6"}`, from `previous`) and `instance`
(`acme.service-now.com`). Times (`sys_updated_on`) are the Table API's UTC `YYYY-MM-DD HH:MM:SS` or
RFC 3339 with an offset.

Event id: `<sys_id>-<sys_mod_count>` (the record's update counter, so a redelivery is a duplicate), else
`<sys_id>-<sys_updated_on>`. Without `operation`, a record whose `sys_mod_count` is 0 has never been updated:
it is the record's creation. A survey answer (`asmt_assessment_instance`, with its `asmt_metric_result`
rows under `metric_results`) is an `itsm.feedback.v1` answer for the task in `trigger_id`.
State mapping looks up `<state>/<hold_reason>` first (on hold awaiting the
caller -> `pending_customer`, awaiting a vendor -> `pending_vendor`), then `<state>`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from intake.domain.acceptance import Rejected, parse_rfc3339
from intake.domain.adapters.common import (
    CLOSED_STATUSES,
    STATUS_ACTIONS,
    Snapshot,
    TicketRef,
    as_object,
    feedback_document,
    require_status,
    text_of,
    ticket_document,
    value_at,
)

if TYPE_CHECKING:
    from intake.domain.mapping import TicketMapping
    from slm_shared.events import TicketAction, TicketStatus

GLIDE_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def _raw(value: Any) -> str | None:
    """The stored value of a field (`value` of a pair, else the field itself)."""
    if isinstance(value, dict):
        return text_of(value.get("value"))
    return text_of(value)


def _display(value: Any) -> str | None:
    if isinstance(value, dict):
        return text_of(value.get("display_value")) or text_of(value.get("value"))
    return text_of(value)


def _time(value: Any) -> datetime:
    text = _raw(value)
    if text is None:
        raise Rejected("invalid_webhook", "sys_updated_on: missing from the ServiceNow record")
    if GLIDE_TIME.fullmatch(text):
        try:
            return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        except ValueError as error:  # the shape of a date, not a date: 2026-13-45 99:99:99
            raise Rejected("invalid_webhook", f"sys_updated_on: {text[:64]!r} is not a valid date/time") from error
    return parse_rfc3339(text, "sys_updated_on")


def _status(record: dict[str, Any], mapping: TicketMapping) -> tuple[TicketStatus | None, str | None]:
    state = _raw(record.get("state")) or _raw(record.get("incident_state"))
    hold = _raw(record.get("hold_reason"))
    display = _display(record.get("state"))
    found = mapping.status_for(f"{state}/{hold}" if state and hold else None, state, display)
    return found, display if display != state else state


def _action(
    payload: dict[str, Any], record: dict[str, Any], status: TicketStatus, mapping: TicketMapping
) -> TicketAction:
    operation = (text_of(payload.get("operation")) or "").lower()
    if operation == "insert" or (not operation and _raw(record.get("sys_mod_count")) == "0"):
        return "created"
    previous = as_object(payload.get("previous"))
    before = mapping.status_for(_raw(previous.get("state"))) if previous.get("state") is not None else None
    if status in STATUS_ACTIONS and before != status:
        return STATUS_ACTIONS[status]
    if before in CLOSED_STATUSES and status not in CLOSED_STATUSES:
        return "reopened"
    comment = payload.get("comment")
    if isinstance(comment, dict) and comment.get("visible_to_customer", True) is not False:
        return "customer_replied" if comment.get("is_caller") is True else "agent_replied"
    return "updated"


SURVEY_TABLE = "asmt_assessment_instance"
DEFAULT_SURVEY_SCALE = 5  # the out-of-box customer satisfaction survey rates 1-5


def _record(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise Rejected("invalid_webhook", "body: a ServiceNow payload is a JSON object")
    record = payload.get("record", payload.get("result", payload))
    if not isinstance(record, dict):
        raise Rejected("invalid_webhook", "record: must be a JSON object")
    return record


def _is_survey(payload: dict[str, Any], record: dict[str, Any]) -> bool:
    table = _raw(record.get("sys_class_name")) or text_of(payload.get("table"))
    return table == SURVEY_TABLE or (table is None and "trigger_id" in record and "metric_type" in record)


def servicenow_ref(payload: Any) -> TicketRef | None:
    """The task whose last snapshot this payload may need: the record itself, or a survey's `trigger_id`."""
    try:
        record = _record(payload)
    except Rejected:
        return None
    sys_id = _raw(record.get("trigger_id")) if _is_survey(payload, record) else _raw(record.get("sys_id"))
    return TicketRef("servicenow", sys_id) if sys_id else None


def _number(value: Any) -> float | None:
    try:
        number = float(str(_raw(value)))
    except ValueError:
        return None
    return number if number == number and abs(number) < 1e9 else None  # NaN and absurd values are no score


def servicenow_survey(
    payload: dict[str, Any], record: dict[str, Any], mapping: TicketMapping, previous: Snapshot | None
) -> dict[str, Any]:
    """A completed survey instance -> one CSAT answer for its task.

    The score is the first numeric `actual_value` of the instance's `metric_results` (asmt_metric_result
    rows), else the instance's own `score`; the scale is that result's (or the record's) `scale_factor` or
    `max`, else 5. The ticket is `trigger_id`'s display value (the task number), else the last snapshot's.
    """
    sys_id = _raw(record.get("sys_id"))
    if sys_id is None:
        raise Rejected("invalid_webhook", "sys_id: missing from the ServiceNow survey instance")
    state = (_raw(record.get("state")) or "").lower()
    if state not in ("complete", "completed", ""):
        raise Rejected("invalid_webhook", f"state: survey instance {state[:32]!r} is not complete")
    results = record.get("metric_results", payload.get("metric_results"))
    rows = [as_object(row) for row in results] if isinstance(results, list) else []
    scored = next((row for row in rows if _number(row.get("actual_value")) is not None), record)
    score = _number(scored.get("actual_value", scored.get("score")))
    if score is None or score < 0:
        raise Rejected("invalid_webhook", "metric_results: the survey instance carries no numeric answer")
    scale = next(
        (
            value
            for value in (_number(scored.get("scale_factor")), _number(scored.get("max")))
            if value is not None and value > 0
        ),
        DEFAULT_SURVEY_SCALE,
    )
    trigger = _display(record.get("trigger_id"))
    ticket_id = previous.ticket_id if previous is not None else trigger
    if ticket_id is None:
        raise Rejected("invalid_webhook", "trigger_id: the survey instance names no task")
    time = _time(record.get("taken_on") or record.get("sys_updated_on"))
    instance = text_of(payload.get("instance"))
    service = previous.get("service") if previous is not None else None
    return feedback_document(
        event_id=f"{sys_id}-survey",
        source=mapping.source or (f"servicenow://{instance}" if instance else "servicenow://unknown"),
        time=time,
        ticket_id=ticket_id,
        service=service or mapping.default_service,
        score=round(score),
        scale=round(scale) or 1,
        comment=_display(scored.get("string_value")),
    )


def servicenow_events(payload: Any, mapping: TicketMapping, previous: Snapshot | None = None) -> list[dict[str, Any]]:
    """The canonical events of one ServiceNow payload: a task snapshot, or a survey's CSAT answer."""
    record = _record(payload)
    if _is_survey(payload, record):
        return [servicenow_survey(payload, record, mapping, previous)]
    return [servicenow_event(payload, mapping)]


def servicenow_event(payload: Any, mapping: TicketMapping) -> dict[str, Any]:
    """The canonical ticket event of one ServiceNow record; raises `Rejected` if it cannot be one."""
    record = _record(payload)
    sys_id = _raw(record.get("sys_id"))
    number = _display(record.get("number"))
    if sys_id is None or number is None:
        raise Rejected("invalid_webhook", "sys_id/number: missing from the ServiceNow record")
    time = _time(record.get("sys_updated_on"))
    status, upstream_status = _status(record, mapping)
    status = require_status(status, upstream_status, "servicenow")
    counter = _raw(record.get("sys_mod_count"))
    table = _raw(record.get("sys_class_name")) or text_of(payload.get("table")) or "incident"
    upstream_priority = _display(record.get("priority"))
    instance = text_of(payload.get("instance"))
    return ticket_document(
        event_id=f"{sys_id}-{counter}" if counter is not None else f"{sys_id}-{time.isoformat()}",
        source=f"servicenow://{instance}" if instance else "servicenow://unknown",
        time=time,
        ticket_id=number,
        action=_action(payload, record, status, mapping),
        status=status,
        mapping=mapping,
        kind=mapping.kind_for(table),
        priority=mapping.priority_for(_raw(record.get("priority")), upstream_priority),
        service=_display(value_at(record, mapping.service_field)) or _display(record.get("cmdb_ci")),
        customer=_display(value_at(record, mapping.customer_field)),
        assignment_group=_display(record.get("assignment_group")),
        assignee=_display(record.get("assigned_to")),
        title=_display(record.get("short_description")),
        attributes={
            "upstream_system": "servicenow",
            "upstream_status": upstream_status,
            "upstream_hold_reason": _raw(record.get("hold_reason")),
            "upstream_priority": upstream_priority,
            "upstream_kind": table,
            "upstream_id": sys_id,
            "upstream_mod_count": counter,
            "upstream_operation": text_of(payload.get("operation")),
            "impact": _display(record.get("impact")),
            "urgency": _display(record.get("urgency")),
        },
    )
