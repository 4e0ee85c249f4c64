"""The upstream classes of issue 17, pure: adapters given the ticket's last snapshot, and history rebuilding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from intake.domain import Rejected
from intake.domain.adapters import Snapshot, jira_events, servicenow_events, snapshot_of, zendesk_events
from intake.domain.history import export_records, jira_payloads, servicenow_payloads
from intake.domain.mapping import DEFAULTS

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
JIRA, SERVICENOW, ZENDESK = DEFAULTS["jira"], DEFAULTS["servicenow"], DEFAULTS["zendesk"]


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def created_snapshot() -> Snapshot:
    return snapshot_of(jira_events(load("webhooks/jira/issue_created.json"), JIRA)[0])


def test_a_jira_deletion_is_a_cancellation_whatever_status_the_issue_had() -> None:
    event = jira_events(load("upstream/jira/issue_deleted.json"), JIRA)[0]
    assert event["id"] == "10042-deleted"
    assert (event["data"]["action"], event["data"]["status"]) == ("cancelled", "cancelled")


def test_a_server_comment_names_its_issue_in_comment_self_and_takes_the_rest_from_the_snapshot() -> None:
    event = jira_events(load("upstream/jira/server_comment_created_without_issue.json"), JIRA, created_snapshot())[0]
    assert event["source"] == "jira://jira.acme.example"
    assert (event["data"]["ticket_id"], event["data"]["status"], event["data"]["title"]) == (
        "ITSM-42",
        "open",
        "Mailbox full, cannot receive mail",
    )


def test_a_server_comment_by_the_reporter_is_a_customer_reply() -> None:
    payload = load("upstream/jira/server_comment_created_without_issue.json")
    previous = created_snapshot()
    previous.data["attributes"]["upstream_reporter"] = "JIRAUSER10100"  # the Server user key of the author
    assert jira_events(payload, JIRA, previous)[0]["data"]["action"] == "customer_replied"


def test_an_update_without_status_takes_the_changelogs_new_status_before_the_snapshots() -> None:
    payload = load("upstream/jira/issue_updated_without_status.json")
    payload["changelog"]["items"].append({"field": "status", "fromString": "Open", "toString": "Resolved"})
    event = jira_events(payload, JIRA, created_snapshot())[0]
    assert (event["data"]["status"], event["data"]["action"]) == ("resolved", "resolved")


def test_a_timestamp_in_jira_text_falls_back_to_the_comment_time_for_a_comment_event() -> None:
    payload = load("webhooks/jira/comment_created_by_customer.json")
    payload["timestamp"] = "soon"
    event = jira_events(payload, JIRA)[0]
    assert event["time"] == "2026-05-06T11:00:00+00:00"  # comment.updated 19:00 at +0800
    assert event["data"]["attributes"]["time_from"] == "comment.updated"


def test_a_servicenow_record_with_an_operation_keeps_it_even_at_mod_count_zero() -> None:
    payload = load("upstream/servicenow/incident_created_without_operation.json")
    assert servicenow_events(payload, SERVICENOW)[0]["data"]["action"] == "created"
    payload["operation"] = "update"
    assert servicenow_events(payload, SERVICENOW)[0]["data"]["action"] == "updated"


def test_a_survey_that_is_not_complete_is_no_answer() -> None:
    payload = load("upstream/servicenow/survey_instance_completed.json")
    payload["record"]["state"] = {"value": "ready"}
    with pytest.raises(Rejected, match="not complete"):
        servicenow_events(payload, SERVICENOW)


def test_a_zendesk_audit_without_a_known_status_is_rejected_with_the_reason() -> None:
    with pytest.raises(Rejected, match="no status"):
        zendesk_events(
            {
                "audit": {
                    "id": 1,
                    "ticket_id": 9,
                    "created_at": "2026-11-20T04:00:00Z",
                    "events": [{"type": "Comment", "public": True, "author_id": 5}],
                }
            },
            ZENDESK,
        )


def test_an_offered_rating_is_not_an_answer() -> None:
    rating = load("upstream/zendesk/satisfaction_rating.json")
    rating["satisfaction_rating"]["score"] = "offered"
    assert zendesk_events(rating, ZENDESK) == []


def test_audits_of_two_tickets_in_one_webhook_are_refused() -> None:
    audits = load("upstream/zendesk/ticket_audits_with_rating.json")["audits"]
    audits[1] = {**audits[1], "ticket_id": 1}
    with pytest.raises(Rejected, match="one ticket"):
        zendesk_events({"audits": audits}, ZENDESK)


def test_the_jira_history_undoes_the_changelog_to_find_the_issue_as_created() -> None:
    issue = load("imports/jira_search_expand_changelog.json")["issues"][0]
    payloads = jira_payloads(issue)
    assert payloads[0]["webhookEvent"] == "jira:issue_created"
    assert payloads[0]["issue"]["fields"]["status"]["name"] == "Open"
    assert payloads[0]["issue"]["fields"]["assignee"] is None
    assert [p.get("changelog", {}).get("id") or p.get("comment", {}).get("id") for p in payloads[1:]] == [
        "20001",
        "40001",
        "20002",
        "40002",
        "20003",
        "20004",
        "20005",
    ]


def test_the_servicenow_history_undoes_sys_audit_to_the_inserted_record() -> None:
    document = load("imports/servicenow_incidents_with_sys_audit.json")
    record = next(export_records("servicenow", document))
    payloads = servicenow_payloads(record, record["sys_audit"], "acme.service-now.com")
    first = payloads[0]["record"]
    assert (first["state"], first["assigned_to"], first["sys_mod_count"]) == ("1", "", "0")
    assert [p["previous"]["state"] for p in payloads[1:]] == ["1", "2", "2", "3", "2"]
    assert payloads[4]["comment"]["is_caller"] is True  # fred.luddy is the caller
