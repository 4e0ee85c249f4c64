"""The Jira, ServiceNow and Zendesk adapters on their documented payloads (tests/fixtures/webhooks)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from intake.domain import Limits, Rejected, accept
from intake.domain.adapters import jira_event, servicenow_event, zendesk_event
from intake.domain.mapping import DEFAULTS, MappingOverride, effective_mapping

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "webhooks"
NOW = datetime(2026, 11, 20, tzinfo=UTC)
LIMITS = Limits(max_future_skew=timedelta(minutes=5), max_event_bytes=512 * 1024)


def fixture(system: str, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / system / f"{name}.json").read_text())
    return loaded


def canonical(document: dict[str, Any]) -> dict[str, Any]:
    """The adapter's output must pass the same acceptance rules as any CloudEvent."""
    routed = accept(document, tenant_id="acme", now=NOW, limits=LIMITS)
    result: dict[str, Any] = json.loads(routed.canonical)
    return result


JIRA = DEFAULTS["jira"]
SERVICENOW = DEFAULTS["servicenow"]
ZENDESK = DEFAULTS["zendesk"]


@pytest.mark.parametrize(
    ("name", "action", "status", "priority", "event_id"),
    [
        ("issue_created", "created", "open", "P2", "10042-created"),
        ("issue_updated_status", "updated", "pending_customer", "P2", "10042-change-10150"),
        ("comment_created_by_customer", "customer_replied", "open", "P2", "10042-comment-10071"),
        ("issue_commented_by_agent", "agent_replied", "in_progress", "P2", "10042-comment-10072"),
        ("internal_comment", "updated", "in_progress", "P2", "10042-comment-10073"),
        ("issue_resolved", "resolved", "resolved", "P2", "10042-change-10163"),
        ("issue_reopened", "reopened", "open", "P1", "10042-change-10201"),
    ],
)
def test_jira_webhooks_become_ticket_snapshots(
    name: str, action: str, status: str, priority: str, event_id: str
) -> None:
    event = canonical(jira_event(fixture("jira", name), JIRA))
    assert event["source"] == "jira://acme.atlassian.net"
    assert event["id"] == event_id
    assert event["subject"] == "ITSM-42"
    data = event["data"]
    assert (data["ticket_id"], data["action"], data["status"], data["priority"]) == (
        "ITSM-42",
        action,
        status,
        priority,
    )
    assert data["kind"] == "incident"
    assert data["attributes"]["upstream_system"] == "jira"
    assert data["attributes"]["upstream_status"]


def test_jira_event_time_is_the_webhook_timestamp_in_utc() -> None:
    event = canonical(jira_event(fixture("jira", "issue_created"), JIRA))
    assert event["time"] == "2026-05-06T09:00:00.123000Z"
    assert event["data"]["service"] == "email"
    assert event["data"]["attributes"]["upstream_priority"] == "High"


def test_a_jira_customer_field_from_the_tenants_mapping_fills_the_customer() -> None:
    mapping = effective_mapping("jira", MappingOverride(customer_field="fields.customfield_10002.0.name"))
    event = canonical(jira_event(fixture("jira", "issue_created"), mapping))
    assert event["data"]["customer"] == "globex"


def test_a_tenants_status_mapping_overrides_the_default_and_keeps_the_upstream_value() -> None:
    mapping = effective_mapping("jira", MappingOverride(statuses={"Waiting for Customer": "on_hold"}))
    event = canonical(jira_event(fixture("jira", "issue_updated_status"), mapping))
    assert event["data"]["status"] == "on_hold"
    assert event["data"]["attributes"]["upstream_status"] == "Waiting for customer"


def test_an_unmapped_jira_status_falls_back_to_its_status_category() -> None:
    payload = fixture("jira", "issue_updated_status")
    payload["issue"]["fields"]["status"]["name"] = "Triage by robots"
    event = canonical(jira_event(payload, JIRA))
    assert event["data"]["status"] == "in_progress"


def test_an_unmapped_status_without_a_category_is_rejected_with_the_mapping_endpoint() -> None:
    payload = fixture("jira", "issue_updated_status")
    payload["issue"]["fields"]["status"] = {"name": "Triage by robots"}
    with pytest.raises(Rejected) as caught:
        jira_event(payload, JIRA)
    assert caught.value.code == "unmapped_value"
    assert "/v1/mappings/jira" in caught.value.reason


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda p: p.pop("issue"), "issue:"),
        (lambda p: p.update(webhookEvent="jira:worklog_updated"), "webhookEvent:"),
        (
            lambda p: (
                p.update(timestamp="yesterday"),
                p["issue"]["fields"].pop("updated", None),
                p["issue"]["fields"].pop("created", None),
            ),
            "timestamp:",
        ),
        (lambda p: p["issue"].pop("id"), "issue.id:"),
    ],
)
def test_a_jira_payload_missing_what_a_ticket_needs_is_rejected(mutate: Any, reason: str) -> None:
    payload = fixture("jira", "issue_created")
    mutate(payload)
    with pytest.raises(Rejected) as caught:
        jira_event(payload, JIRA)
    assert caught.value.code == "invalid_webhook"
    assert caught.value.reason.startswith(reason)


@pytest.mark.parametrize(
    ("name", "action", "status", "priority", "kind", "event_id"),
    [
        ("incident_inserted", "created", "new", "P2", "incident", "9d385017c611228701d22104cc95c371-0"),
        (
            "incident_on_hold_awaiting_caller",
            "agent_replied",
            "pending_customer",
            "P2",
            "incident",
            "9d385017c611228701d22104cc95c371-3",
        ),
        ("incident_resolved", "resolved", "resolved", "P2", "incident", "9d385017c611228701d22104cc95c371-7"),
        ("request_item_inserted", "created", "new", "P4", "service_request", "aeed229047801200e0ef563dbb9a71c2-0"),
    ],
)
def test_servicenow_records_become_ticket_snapshots(
    name: str, action: str, status: str, priority: str, kind: str, event_id: str
) -> None:
    event = canonical(servicenow_event(fixture("servicenow", name), SERVICENOW))
    assert event["source"] == "servicenow://acme.service-now.com"
    assert event["id"] == event_id
    data = event["data"]
    assert (data["action"], data["status"], data["priority"], data["kind"]) == (action, status, priority, kind)
    assert data["attributes"]["upstream_system"] == "servicenow"


def test_servicenow_display_values_fill_service_customer_and_group() -> None:
    event = canonical(servicenow_event(fixture("servicenow", "incident_inserted"), SERVICENOW))
    data = event["data"]
    assert (data["ticket_id"], data["service"], data["customer"]) == ("INC0010042", "SAP Payroll", "ACME North America")
    assert data["assignment_group"] == "Software"
    assert data["attributes"]["upstream_priority"] == "2 - High"
    # The Table API's sys_updated_on is UTC without an offset.
    assert event["time"] == "2026-05-06T01:15:00Z"


def test_a_servicenow_record_without_a_service_uses_its_configuration_item() -> None:
    event = canonical(servicenow_event(fixture("servicenow", "request_item_inserted"), SERVICENOW))
    assert event["data"]["service"] == "Laptop fleet"
    assert event["data"]["customer"] == "unknown"


def test_a_servicenow_record_without_sys_id_is_rejected() -> None:
    payload = fixture("servicenow", "incident_resolved")
    del payload["result"]["sys_id"]
    with pytest.raises(Rejected) as caught:
        servicenow_event(payload, SERVICENOW)
    assert caught.value.code == "invalid_webhook"


@pytest.mark.parametrize(
    ("name", "action", "status", "priority", "kind", "event_id"),
    [
        ("ticket_created", "created", "new", "P1", "incident", "01JTQ9V6H6XK4Y2Q0E4C7V3M8N"),
        (
            "ticket_comment_added_by_requester",
            "customer_replied",
            "open",
            "P1",
            "incident",
            "01JTQA2B3C4D5E6F7G8H9J0K1L",
        ),
        (
            "ticket_comment_added_by_agent",
            "agent_replied",
            "pending_customer",
            "P1",
            "incident",
            "01JTQA9X8W7V6U5T4S3R2Q1P0O",
        ),
        ("ticket_status_changed_solved", "resolved", "resolved", "P1", "incident", "01JTQB7ZK1Q3W5E7R9T1Y3U5I7"),
        ("trigger_ticket_updated", "updated", "on_hold", "P3", "service_request", "35440-2026-05-06T08:00:00+08:00"),
    ],
)
def test_zendesk_webhooks_become_ticket_snapshots(
    name: str, action: str, status: str, priority: str, kind: str, event_id: str
) -> None:
    event = canonical(zendesk_event(fixture("zendesk", name), ZENDESK))
    assert event["id"] == event_id
    data = event["data"]
    assert (data["action"], data["status"], data["priority"], data["kind"]) == (action, status, priority, kind)
    assert data["attributes"]["upstream_system"] == "zendesk"


def test_zendesk_event_webhooks_carry_the_account_as_source_and_the_organization_as_customer() -> None:
    event = canonical(zendesk_event(fixture("zendesk", "ticket_created"), ZENDESK))
    assert event["source"] == "zendesk://22129848"
    assert event["data"]["customer"] == "globex"
    assert event["data"]["assignee"] is None  # Zendesk's "0" means unassigned


def test_a_zendesk_user_event_is_not_a_ticket_event() -> None:
    with pytest.raises(Rejected) as caught:
        zendesk_event(
            {"type": "zen:event-type:user.active_changed", "id": "x", "time": "2026-05-06T03:00:00Z"}, ZENDESK
        )
    assert caught.value.code == "invalid_webhook"


@pytest.mark.parametrize("adapter", [jira_event, servicenow_event, zendesk_event])
@pytest.mark.parametrize("payload", [None, [], "text", 7, {}])
def test_adapters_reject_payloads_that_are_not_their_shape(adapter: Any, payload: Any) -> None:
    with pytest.raises(Rejected):
        adapter(payload, JIRA)
