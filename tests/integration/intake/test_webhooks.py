"""Native webhooks over HTTP: each fixture becomes one ticket event; a redelivery is a duplicate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.tables import received_events
from scripts.localstack import Stack
from slm_shared import topics
from tests.integration.intake.support import Keys, RunningIntake, TopicReader, drained

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "webhooks"
ALL_FIXTURES = sorted((path.parent.name, path) for path in FIXTURES.glob("*/*.json"))
BODIES = {path: path.read_bytes() for _, path in ALL_FIXTURES}


@pytest.mark.parametrize(("system", "path"), ALL_FIXTURES, ids=[f"{s}-{p.stem}" for s, p in ALL_FIXTURES])
async def test_each_webhook_fixture_is_accepted_once_and_published_as_a_ticket_event(
    intake: RunningIntake, keys: Keys, stack: Stack, engine: AsyncEngine, system: str, path: Path
) -> None:
    tenant = await keys.tenant()
    body = BODIES[path]
    reader = await TopicReader(stack.kafka_bootstrap, topics.TICKETS).start()
    first = await intake.client.post(
        f"/v1/webhooks/{system}", content=body, headers={**tenant.headers, "Content-Type": "application/json"}
    )
    again = await intake.client.post(
        f"/v1/webhooks/{system}",
        content=body,
        headers={**tenant.headers, "Content-Type": "application/json; charset=utf-8"},
    )
    assert first.status_code == 202, first.text
    assert first.json()["results"][0]["result"] == "accepted"
    assert again.status_code == 202
    assert again.json()["results"][0]["result"] == "duplicate"
    await reader.read_until(lambda _: len(reader.events(tenant.id)) >= 1)
    await drained(engine, tenant.id)
    await reader.read_to_end()
    await reader.stop()
    published = reader.events(tenant.id)
    assert len(published) == 1
    assert published[0]["type"] == "itsm.ticket.v1"
    assert published[0]["source"].startswith(f"{system}://")
    assert published[0]["data"]["attributes"]["upstream_system"] == system


async def test_a_tenants_mapping_is_stored_scoped_to_the_tenant_and_applied_to_its_webhooks(
    intake: RunningIntake, keys: Keys
) -> None:
    tenant, other = await keys.tenant(), await keys.tenant()
    override = {
        "statuses": {"Waiting for customer": "on_hold"},
        "priorities": {"high": "P1"},
        "customer_field": "fields.customfield_10002.0.name",
    }
    put = await intake.client.put("/v1/mappings/jira", json=override, headers=tenant.headers)
    assert put.status_code == 200
    assert put.json()["effective"]["statuses"]["waiting for customer"] == "on_hold"
    mine = (await intake.client.get("/v1/mappings/jira", headers=tenant.headers)).json()
    theirs = (await intake.client.get("/v1/mappings/jira", headers=other.headers)).json()
    assert mine["override"]["priorities"] == {"high": "P1"}
    assert theirs["override"]["statuses"] == {}
    assert theirs["effective"]["statuses"]["waiting for customer"] == "pending_customer"

    body = BODIES[FIXTURES / "jira" / "issue_updated_status.json"]
    answer = await intake.client.post("/v1/webhooks/jira", content=body, headers=tenant.headers)
    assert answer.status_code == 202
    async with intake.app.state.runtime.sessions() as session:
        row = (await session.execute(received_events.select().where(received_events.c.tenant_id == tenant.id))).one()
    data = json.loads(row.canonical)["data"]
    assert (data["status"], data["priority"], data["customer"]) == ("on_hold", "P1", "globex")
    assert data["attributes"]["upstream_status"] == "Waiting for customer"
    assert row.raw == body


@pytest.mark.parametrize(
    ("override", "status"),
    [({"statuses": {"open": "not-a-status"}}, 422), ({"colours": {}}, 422), ([], 422)],
)
async def test_an_invalid_mapping_is_refused(intake: RunningIntake, keys: Keys, override: object, status: int) -> None:
    tenant = await keys.tenant()
    answer = await intake.client.put("/v1/mappings/zendesk", json=override, headers=tenant.headers)
    assert answer.status_code == status


async def test_mappings_of_an_unknown_system_do_not_exist(intake: RunningIntake, keys: Keys) -> None:
    tenant = await keys.tenant()
    assert (await intake.client.get("/v1/mappings/remedy", headers=tenant.headers)).status_code == 422


@pytest.mark.parametrize(
    ("system", "body", "code"),
    [
        ("jira", b'{"webhookEvent": "jira:issue_deleted"}', "invalid_webhook"),
        ("jira", b"not json", "malformed_json"),
        ("servicenow", b'{"record": {"number": "INC1"}}', "invalid_webhook"),
        (
            "zendesk",
            b'{"type": "zen:event-type:ticket.created", "id": "e1", "time": "2026-05-06T03:00:00",'
            b' "detail": {"id": "1", "status": "NEW"}}',
            "time_without_offset",
        ),
        (
            "zendesk",
            b'{"type": "zen:event-type:ticket.created", "id": "e2", "time": "2026-05-06T03:00:00Z",'
            b' "detail": {"id": "1", "status": "PAUSED"}}',
            "unmapped_value",
        ),
    ],
)
async def test_a_webhook_that_cannot_become_a_ticket_event_answers_400_with_the_reason(
    intake: RunningIntake, keys: Keys, system: str, body: bytes, code: str
) -> None:
    tenant = await keys.tenant()
    answer = await intake.client.post(
        f"/v1/webhooks/{system}", content=body, headers={**tenant.headers, "Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json()["results"][0]["code"] == code
    rejections = (await intake.client.get("/v1/rejections", headers=tenant.headers)).json()
    assert rejections[0]["channel"] == f"webhook:{system}"
    assert rejections[0]["raw_preview"] == body.decode("utf-8", "replace")


async def test_webhooks_need_an_api_key(intake: RunningIntake) -> None:
    body = BODIES[FIXTURES / "zendesk" / "ticket_created.json"]
    assert (await intake.client.post("/v1/webhooks/zendesk", content=body)).status_code == 401
