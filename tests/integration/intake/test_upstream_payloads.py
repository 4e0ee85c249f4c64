"""Upstream payloads intake used to reject or misread (issue 17), posted to `/v1/webhooks/*` with a key.

Each class: a Jira deletion, a Jira Server comment without `issue`, a Jira update without `fields.status`,
a Jira `timestamp` that is not epoch milliseconds, a ServiceNow creation without `operation`, Zendesk REST
audits (several events per audit) and CSAT from the three systems. Expected values are read off the
fixtures by hand (tests/fixtures/upstream/SOURCES.md says what each rests on).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.tables import received_events
from scripts.localstack import Stack
from slm_shared import topics
from tests.integration.intake.support import Keys, RunningIntake, Tenant, TopicReader, drained

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
JSON = {"Content-Type": "application/json"}


def body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


async def post(intake: RunningIntake, tenant: Tenant, system: str, content: bytes) -> tuple[int, list[dict[str, Any]]]:
    answer = await intake.client.post(f"/v1/webhooks/{system}", content=content, headers={**tenant.headers, **JSON})
    return answer.status_code, answer.json()["results"]


async def archived(engine: AsyncEngine, tenant: Tenant) -> list[dict[str, Any]]:
    """The tenant's canonical events in the order intake accepted them."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.select(received_events.c.canonical)
            .where(received_events.c.tenant_id == tenant.id)
            .order_by(received_events.c.received_at, received_events.c.event_time)
        )
    return [json.loads(row.canonical) for row in rows]


async def test_a_jira_issue_deletion_cancels_the_ticket(intake: RunningIntake, keys: Keys, engine: AsyncEngine) -> None:
    tenant = await keys.tenant()
    assert (await post(intake, tenant, "jira", body("webhooks/jira/issue_created.json")))[0] == 202
    code, results = await post(intake, tenant, "jira", body("upstream/jira/issue_deleted.json"))
    assert (code, results[0]["result"], results[0]["id"]) == (202, "accepted", "10042-deleted")
    event = (await archived(engine, tenant))[-1]
    assert (event["data"]["action"], event["data"]["status"]) == ("cancelled", "cancelled")
    assert event["time"] == "2026-11-20T02:00:00Z"
    assert event["data"]["attributes"]["upstream_status"] == "Waiting for support"


async def test_a_jira_server_comment_without_issue_is_a_reply_to_the_issue_intake_archived(
    intake: RunningIntake, keys: Keys, engine: AsyncEngine
) -> None:
    tenant = await keys.tenant()
    await post(intake, tenant, "jira", body("webhooks/jira/issue_created.json"))
    code, results = await post(intake, tenant, "jira", body("upstream/jira/server_comment_created_without_issue.json"))
    assert (code, results[0]["result"], results[0]["id"]) == (202, "accepted", "10042-comment-10071")
    data = (await archived(engine, tenant))[-1]["data"]
    # Key, status, priority, kind and service come from the created snapshot (ITSM-42, Open, High, email).
    assert (data["ticket_id"], data["action"], data["status"]) == ("ITSM-42", "agent_replied", "open")
    assert (data["priority"], data["kind"], data["service"]) == ("P2", "incident", "email")
    assert data["attributes"]["filled_from_snapshot"][:2] == ["key", "status"]


async def test_a_jira_server_comment_on_an_unknown_issue_uses_the_issue_id(
    intake: RunningIntake, keys: Keys, engine: AsyncEngine
) -> None:
    tenant = await keys.tenant()
    code, _ = await post(intake, tenant, "jira", body("upstream/jira/server_comment_created_without_issue.json"))
    assert code == 202
    data = (await archived(engine, tenant))[-1]["data"]
    assert (data["ticket_id"], data["status"], data["action"]) == ("10042", "open", "agent_replied")
    assert data["attributes"]["filled_from_snapshot"] == ["key:issue_id", "status:assumed_open"]


async def test_a_jira_update_without_status_takes_the_fields_it_lacks_from_the_last_snapshot(
    intake: RunningIntake, keys: Keys, engine: AsyncEngine
) -> None:
    tenant = await keys.tenant()
    await post(intake, tenant, "jira", body("webhooks/jira/issue_created.json"))
    code, results = await post(intake, tenant, "jira", body("upstream/jira/issue_updated_without_status.json"))
    assert (code, results[0]["id"]) == (202, "10042-change-10455")
    data = (await archived(engine, tenant))[-1]["data"]
    assert (data["status"], data["priority"], data["title"]) == ("open", "P2", "Mailbox full, cannot receive mail")
    assert data["action"] == "updated"
    assert "status" in data["attributes"]["filled_from_snapshot"]


async def test_a_jira_update_without_status_and_no_earlier_snapshot_is_rejected_with_the_reason(
    intake: RunningIntake, keys: Keys
) -> None:
    tenant = await keys.tenant()
    code, results = await post(intake, tenant, "jira", body("upstream/jira/issue_updated_without_status.json"))
    assert (code, results[0]["code"]) == (400, "invalid_webhook")
    assert results[0]["reason"].startswith("fields.status:")


async def test_a_jira_timestamp_that_is_not_epoch_millis_falls_back_to_the_issue_updated_time(
    intake: RunningIntake, keys: Keys, engine: AsyncEngine
) -> None:
    tenant = await keys.tenant()
    code, _ = await post(intake, tenant, "jira", body("upstream/jira/issue_updated_timestamp_not_millis.json"))
    assert code == 202
    event = (await archived(engine, tenant))[-1]
    assert event["time"] == "2026-11-20T00:30:00Z"  # 08:30 at +0800
    assert event["data"]["attributes"]["time_from"] == "issue.fields.updated"
    assert (event["data"]["status"], event["data"]["action"]) == ("in_progress", "updated")


async def test_a_servicenow_record_never_updated_and_without_operation_is_its_creation(
    intake: RunningIntake, keys: Keys, engine: AsyncEngine
) -> None:
    tenant = await keys.tenant()
    code, results = await post(
        intake, tenant, "servicenow", body("upstream/servicenow/incident_created_without_operation.json")
    )
    assert (code, results[0]["id"]) == (202, "46d44a5ea9fe19810012d100cca80666-0")
    data = (await archived(engine, tenant))[-1]["data"]
    assert (data["action"], data["status"], data["service"]) == ("created", "new", "Printing")


async def test_a_zendesk_audit_with_a_public_reply_and_solved_is_a_reply_then_resolved_a_trigger_repeat_a_duplicate(
    intake: RunningIntake, keys: Keys, engine: AsyncEngine
) -> None:
    tenant = await keys.tenant()
    assert (
        await intake.client.put("/v1/mappings/zendesk", json={"source": "zendesk://acmehelp"}, headers=tenant.headers)
    ).status_code == 200
    history = json.loads(body("upstream/zendesk/ticket_audits_with_rating.json"))
    code, _ = await post(intake, tenant, "zendesk", json.dumps({"audits": history["audits"][:2]}).encode())
    assert code == 202
    code, results = await post(intake, tenant, "zendesk", body("upstream/zendesk/audit_reply_and_solved.json"))
    assert code == 202
    assert [r["result"] for r in results] == ["accepted", "accepted"]
    by_id = {e["id"]: e for e in await archived(engine, tenant)}
    events = [by_id[r["id"]] for r in results]  # results are in publication order
    assert [(e["data"]["action"], e["data"]["status"]) for e in events] == [
        ("agent_replied", "open"),
        ("resolved", "resolved"),
    ]
    assert {e["time"] for e in events} == {"2026-11-20T04:00:00Z"}
    assert events[1]["id"] == "35441-2026-11-20T04:00:00+00:00"
    trigger = {
        "event": "updated",
        "account": "acmehelp",
        "ticket": {
            "id": "35441",
            "status": "solved",
            "priority": "normal",
            "type": "incident",
            "updated_at": "2026-11-20T04:00:00Z",
        },
    }
    code, results = await post(intake, tenant, "zendesk", json.dumps(trigger).encode())
    assert (code, results[0]["result"]) == (202, "duplicate")


async def test_csat_from_zendesk_audits_and_ratings_is_published_as_feedback_linked_to_the_ticket(
    intake: RunningIntake, keys: Keys, stack: Stack, engine: AsyncEngine
) -> None:
    tenant = await keys.tenant()
    reader = await TopicReader(stack.kafka_bootstrap, topics.FEEDBACK).start()
    code, results = await post(intake, tenant, "zendesk", body("upstream/zendesk/ticket_audits_with_rating.json"))
    assert code == 202
    # created (01:00), open + assigned (02:00), agent reply then solved (04:00), the rating (05:00).
    assert len(results) == 5
    assert {r["result"] for r in results} == {"accepted"}
    code, rated = await post(intake, tenant, "zendesk", body("upstream/zendesk/satisfaction_rating.json"))
    assert (code, rated[0]["id"]) == (202, "35441-csat-bad")
    await reader.read_until(lambda _: len(reader.events(tenant.id)) >= 2)
    await drained(engine, tenant.id)
    await reader.read_to_end()
    await reader.stop()
    answers = sorted(
        (e["data"]["ticket_id"], e["data"]["score"], e["data"]["scale"], e["data"]["comment"], e["time"])
        for e in reader.events(tenant.id)
    )
    assert answers == [
        ("35441", 0, 1, "Took three days", "2026-11-20T06:00:00Z"),
        ("35441", 1, 1, "Thanks, all good", "2026-11-20T05:00:00Z"),
    ]
    by_id = {e["id"]: e for e in await archived(engine, tenant)}
    tickets = [by_id[r["id"]] for r in results if by_id[r["id"]]["type"] == "itsm.ticket.v1"]
    assert [e["data"]["action"] for e in tickets] == ["created", "updated", "agent_replied", "resolved"]
    assert tickets[0]["data"]["customer"] == "555"


async def test_a_jsm_satisfaction_rating_is_a_csat_answer_on_a_scale_of_five(
    intake: RunningIntake, keys: Keys, engine: AsyncEngine
) -> None:
    tenant = await keys.tenant()
    await post(intake, tenant, "jira", body("webhooks/jira/issue_created.json"))
    code, results = await post(intake, tenant, "jira", body("upstream/jira/issue_updated_satisfaction.json"))
    assert (code, [r["result"] for r in results]) == (202, ["accepted", "accepted"])
    feedback = (await archived(engine, tenant))[-1]
    assert feedback["type"] == "itsm.feedback.v1"
    assert (feedback["data"]["ticket_id"], feedback["data"]["score"], feedback["data"]["scale"]) == ("ITSM-42", 4, 5)
    assert feedback["data"]["service"] == "email"


async def test_a_servicenow_survey_instance_is_a_csat_answer_for_its_incident(
    intake: RunningIntake, keys: Keys, engine: AsyncEngine
) -> None:
    tenant = await keys.tenant()
    await post(intake, tenant, "servicenow", body("upstream/servicenow/incident_created_without_operation.json"))
    code, results = await post(intake, tenant, "servicenow", body("upstream/servicenow/survey_instance_completed.json"))
    assert (code, results[0]["id"]) == (202, "a0b1c2d3e4f5061728394a5b6c7d8e9f-survey")
    data = (await archived(engine, tenant))[-1]["data"]
    assert (data["ticket_id"], data["service"], data["score"], data["scale"]) == ("INC0010077", "Printing", 4, 5)
    assert data["comment"] == "Quick and polite"
