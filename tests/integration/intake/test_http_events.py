"""`POST /v1/events` on the real stack: acceptance, per-event results, dedup, tenants, keys, limits."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from scripts.localstack import Stack
from slm_shared import topics
from tests.integration.intake.support import (
    Keys,
    RunningIntake,
    TopicReader,
    drained,
    intake_settings,
    running_intake,
    unique,
)
from tests.support.events import BATCH_HEADERS, batch_body, ticket_event

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


def event(tenant: str, ticket: str = "INC-1", **kwargs: Any) -> dict[str, Any]:
    return ticket_event(tenant, ticket, NOW - timedelta(minutes=10), **kwargs)


async def test_a_valid_event_is_accepted_and_published_once_to_the_tickets_topic(
    intake: RunningIntake, keys: Keys, stack: Stack, engine: AsyncEngine
) -> None:
    tenant = await keys.tenant()
    reader = await TopicReader(stack.kafka_bootstrap, topics.TICKETS).start()
    sent = event(tenant.id)
    answer = await intake.client.post("/v1/events", json=sent, headers=tenant.headers)
    assert answer.status_code == 202
    assert answer.json()["results"] == [
        {"index": 0, "id": sent["id"], "result": "accepted", "code": None, "reason": None}
    ]
    await reader.read_until(lambda _: len(reader.events(tenant.id)) >= 1)
    await drained(engine, tenant.id)
    await reader.read_to_end()
    await reader.stop()
    published = reader.events(tenant.id)
    assert [e["id"] for e in published] == [sent["id"]]
    assert published[0]["data"]["ticket_id"] == "INC-1"
    assert [r.key for r in reader.records if json.loads(r.value).get("tenantid") == tenant.id] == [
        f"{tenant.id}/INC-1".encode()
    ]


async def test_a_retried_post_is_a_duplicate_and_never_a_second_canonical_event(
    intake: RunningIntake, keys: Keys, stack: Stack, engine: AsyncEngine
) -> None:
    tenant = await keys.tenant()
    reader = await TopicReader(stack.kafka_bootstrap, topics.TICKETS).start()
    sent = event(tenant.id)
    first = await intake.client.post("/v1/events", json=sent, headers=tenant.headers)
    retries = await asyncio.gather(
        *(intake.client.post("/v1/events", json=sent, headers=tenant.headers) for _ in range(5))
    )
    assert first.json()["accepted"] == 1
    assert all(r.status_code == 202 and r.json()["results"][0]["result"] == "duplicate" for r in retries)
    await reader.read_until(lambda _: len(reader.events(tenant.id)) >= 1)
    await drained(engine, tenant.id)
    await reader.read_to_end()
    await reader.stop()
    assert [e["id"] for e in reader.events(tenant.id)] == [sent["id"]]


async def test_concurrent_batches_sharing_events_accept_each_event_exactly_once(
    intake: RunningIntake, keys: Keys
) -> None:
    tenant = await keys.tenant()
    events = [event(tenant.id, f"INC-{n}") for n in range(200)]
    bodies = [batch_body(events[::-1]), batch_body(events), batch_body(events[50:] + events[:50])]
    answers = await asyncio.gather(
        *(
            intake.client.post("/v1/events", content=body, headers={**tenant.headers, **BATCH_HEADERS})
            for body in bodies
        )
    )
    assert all(a.status_code == 202 for a in answers)
    accepted = Counter(r["id"] for a in answers for r in a.json()["results"] if r["result"] == "accepted")
    assert set(accepted) == {e["id"] for e in events}
    assert set(accepted.values()) == {1}


async def test_a_batch_accepts_the_good_events_and_names_the_fault_of_each_bad_one(
    intake: RunningIntake, keys: Keys, stack: Stack, engine: AsyncEngine
) -> None:
    tenant = await keys.tenant()
    good = [event(tenant.id, f"INC-{n}") for n in range(3)]
    naive = {**event(tenant.id), "time": "2026-05-06T10:00:00"}
    future = {**event(tenant.id), "time": (NOW + timedelta(days=1)).isoformat()}
    bad_status = event(tenant.id)
    bad_status["data"]["status"] = "stuck"
    unknown_field = event(tenant.id)
    unknown_field["data"]["colour"] = "red"
    spoofed = event("someone-else")
    bad = [
        (naive, "time_without_offset", "time:"),
        (future, "time_in_future", "time:"),
        (bad_status, "invalid_data", "data.status:"),
        (unknown_field, "invalid_data", "data.colour:"),
        (spoofed, "tenant_mismatch", "tenantid:"),
        ({**event(tenant.id), "type": "com.example.thing"}, "unknown_type", "type:"),
        ({**event(tenant.id), "specversion": "0.3"}, "invalid_envelope", "specversion:"),
        ({k: v for k, v in event(tenant.id).items() if k != "id"}, "invalid_envelope", "id:"),
        ({**event(tenant.id), "data_base64": "AAAA"}, "binary_data", "data_base64:"),
        ({**event(tenant.id), "Not-An-Extension": 1}, "invalid_extension", "Not-An-Extension:"),
        ("not an object", "not_an_object", "body:"),
        ({**event(tenant.id), "subject": "nul\u0000"}, "invalid_text", "subject:"),
    ]
    body: list[Any] = [good[0], *(item for item, _, _ in bad[:6]), good[1], *(item for item, _, _ in bad[6:]), good[2]]
    reader = await TopicReader(stack.kafka_bootstrap, topics.TICKETS).start()
    answer = await intake.client.post(
        "/v1/events", content=batch_body(body), headers={**tenant.headers, **BATCH_HEADERS}
    )
    assert answer.status_code == 202
    document = answer.json()
    assert (document["accepted"], document["duplicate"], document["rejected"]) == (3, 0, len(bad))
    results = {r["index"]: r for r in document["results"]}
    good_indexes = [0, 7, len(body) - 1]
    assert [results[i]["result"] for i in good_indexes] == ["accepted"] * 3
    bad_indexes = [i for i in range(len(body)) if i not in good_indexes]
    for index, (_, code, field) in zip(bad_indexes, bad, strict=True):
        assert results[index]["result"] == "rejected"
        assert results[index]["code"] == code
        assert results[index]["reason"].startswith(field), results[index]["reason"]
    await reader.read_until(lambda _: len(reader.events(tenant.id)) >= 3)
    await drained(engine, tenant.id)
    await reader.read_to_end()
    await reader.stop()
    assert sorted(e["id"] for e in reader.events(tenant.id)) == sorted(e["id"] for e in good)
    assert reader.events("someone-else") == [] or all(e["id"] != spoofed["id"] for e in reader.events("someone-else"))
    rejections = (await intake.client.get("/v1/rejections", headers=tenant.headers)).json()
    assert Counter(r["code"] for r in rejections) == Counter(code for _, code, _ in bad)


async def test_a_duplicate_inside_one_batch_is_reported_as_duplicate(intake: RunningIntake, keys: Keys) -> None:
    tenant = await keys.tenant()
    sent = event(tenant.id)
    answer = await intake.client.post(
        "/v1/events", content=batch_body([sent, sent]), headers={**tenant.headers, **BATCH_HEADERS}
    )
    assert [r["result"] for r in answer.json()["results"]] == ["accepted", "duplicate"]


async def test_a_single_rejected_event_answers_400_with_its_reason(intake: RunningIntake, keys: Keys) -> None:
    tenant = await keys.tenant()
    answer = await intake.client.post(
        "/v1/events", json={**event(tenant.id), "time": "2026-05-06 10:00:00"}, headers=tenant.headers
    )
    assert answer.status_code == 400
    assert answer.json()["results"][0]["code"] == "time_without_offset"


async def test_a_single_event_claiming_another_tenant_is_forbidden(intake: RunningIntake, keys: Keys) -> None:
    tenant, other = await keys.tenant(), await keys.tenant()
    answer = await intake.client.post("/v1/events", json=event(other.id), headers=tenant.headers)
    assert answer.status_code == 403
    assert answer.json()["results"][0]["code"] == "tenant_mismatch"


async def test_an_event_without_tenantid_belongs_to_the_keys_tenant(
    intake: RunningIntake, keys: Keys, stack: Stack, engine: AsyncEngine
) -> None:
    tenant = await keys.tenant()
    sent = {k: v for k, v in event(tenant.id).items() if k != "tenantid"}
    reader = await TopicReader(stack.kafka_bootstrap, topics.TICKETS).start()
    answer = await intake.client.post(
        "/v1/events",
        content=json.dumps(sent),
        headers={**tenant.headers, "Content-Type": "application/cloudevents+json"},
    )
    assert answer.status_code == 202
    await reader.read_until(lambda _: len(reader.events(tenant.id)) >= 1)
    await reader.stop()
    assert [e["id"] for e in reader.events(tenant.id)] == [sent["id"]]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"\xff\xfe\x00", "application/json", 400),
        (b'{"a": 1}', BATCH_HEADERS["Content-Type"], 400),
        (b"[1, 2", BATCH_HEADERS["Content-Type"], 400),
        (b"[]", "application/cloudevents+json", 400),
        (b"<event/>", "application/xml", 415),
        (b"a=b", "application/x-www-form-urlencoded", 415),
    ],
)
async def test_a_body_that_cannot_hold_events_is_refused_whole(
    intake: RunningIntake, keys: Keys, body: bytes, content_type: str, status: int
) -> None:
    tenant = await keys.tenant()
    answer = await intake.client.post(
        "/v1/events", content=body, headers={**tenant.headers, "Content-Type": content_type}
    )
    assert answer.status_code == status
    document = answer.json()
    assert document.get("detail") or document["results"][0]["code"] == "not_an_object"


async def test_a_batch_over_the_event_limit_answers_413(intake: RunningIntake, keys: Keys) -> None:
    tenant = await keys.tenant()
    events = [event(tenant.id, f"INC-{n}") for n in range(intake.settings.max_batch_events + 1)]
    answer = await intake.client.post(
        "/v1/events", content=batch_body(events), headers={**tenant.headers, **BATCH_HEADERS}
    )
    assert answer.status_code == 413


async def test_a_body_over_the_size_limit_answers_413(intake: RunningIntake, keys: Keys) -> None:
    tenant = await keys.tenant()
    body = b"[" + b" " * intake.settings.max_body_bytes + b"]"
    answer = await intake.client.post("/v1/events", content=body, headers={**tenant.headers, **BATCH_HEADERS})
    assert answer.status_code == 413


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic dXNlcjpwYXNz", "Bearer ", "Bearer not-a-key", "Bearer slm_000000000000_guessed-secret"],
)
async def test_a_request_without_a_valid_key_answers_401(intake: RunningIntake, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = await intake.client.post("/v1/events", json=event("anyone"), headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


async def test_a_revoked_key_stops_working_and_its_rotation_works(intake: RunningIntake, keys: Keys) -> None:
    tenant = await keys.tenant()
    assert (await intake.client.post("/v1/events", json=event(tenant.id), headers=tenant.headers)).status_code == 202
    rotated = await keys.admin.rotate(tenant.key_id)
    deadline = time.monotonic() + 30  # the authenticator caches a key's answer for a few seconds
    status = 202
    while status != 401 and time.monotonic() < deadline:
        status = (await intake.client.post("/v1/events", json=event(tenant.id), headers=tenant.headers)).status_code
        await asyncio.sleep(0.2)
    assert status == 401
    answer = await intake.client.post(
        "/v1/events", json=event(tenant.id), headers={"Authorization": f"Bearer {rotated.plaintext}"}
    )
    assert answer.status_code == 202


async def test_a_key_over_its_rate_limit_answers_429_with_retry_after(stack: Stack, keys: Keys) -> None:
    settings = intake_settings(stack, rate_limit_per_second=0.01, rate_limit_burst=3)
    tenant, other = await keys.tenant(), await keys.tenant()
    async with running_intake(settings) as limited:
        answers = [
            await limited.client.post("/v1/events", json=event(tenant.id, unique("INC")), headers=tenant.headers)
            for _ in range(4)
        ]
        neighbour = await limited.client.post("/v1/events", json=event(other.id), headers=other.headers)
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert neighbour.status_code == 202
