"""The Kafka path: CloudEvents on the ingest topic in, canonical events or dead letters out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from scripts.localstack import Stack
from slm_shared import topics
from tests.integration.intake.support import Keys, RunningIntake, TopicReader, drained, ensure_topic
from tests.support.events import ticket_event

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


async def produce(stack: Stack, topic: str, values: list[bytes], key: bytes | None = b"k") -> None:
    await ensure_topic(stack.kafka_bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=key, headers=[("origin", b"upstream-7")])
    finally:
        await producer.stop()


def encoded(event: dict[str, object]) -> bytes:
    return json.dumps(event).encode()


async def test_valid_records_are_published_once_even_when_redelivered(
    intake: RunningIntake, keys: Keys, stack: Stack, engine: AsyncEngine
) -> None:
    tenant = await keys.tenant()
    events = [ticket_event(tenant.id, f"INC-{n}", NOW - timedelta(minutes=5)) for n in range(20)]
    reader = await TopicReader(stack.kafka_bootstrap, topics.TICKETS).start()
    # Every record twice, as an upstream producer retrying after a lost ack would send it.
    await produce(stack, intake.settings.ingest_topic, [encoded(e) for e in events] * 2)
    await reader.read_until(lambda _: len(reader.events(tenant.id)) >= len(events))
    await drained(engine, tenant.id)
    await reader.read_to_end()
    await reader.stop()
    published = [e["id"] for e in reader.events(tenant.id)]
    assert sorted(published) == sorted(e["id"] for e in events)


async def test_an_event_accepted_over_http_is_a_duplicate_on_the_kafka_path(
    intake: RunningIntake, keys: Keys, stack: Stack, engine: AsyncEngine
) -> None:
    tenant = await keys.tenant()
    sent = ticket_event(tenant.id, "INC-9", NOW - timedelta(minutes=5))
    marker = ticket_event(tenant.id, "INC-10", NOW - timedelta(minutes=5))
    reader = await TopicReader(stack.kafka_bootstrap, topics.TICKETS).start()
    assert (await intake.client.post("/v1/events", json=sent, headers=tenant.headers)).json()["accepted"] == 1
    await produce(stack, intake.settings.ingest_topic, [encoded(sent), encoded(marker)], key=b"same")
    await reader.read_until(lambda _: {e["id"] for e in reader.events(tenant.id)} >= {sent["id"], marker["id"]})
    await drained(engine, tenant.id)
    await reader.read_to_end()
    await reader.stop()
    assert sorted(e["id"] for e in reader.events(tenant.id)) == sorted([sent["id"], marker["id"]])


async def test_invalid_records_are_dead_lettered_with_their_original_bytes_and_consumption_goes_on(
    intake: RunningIntake, keys: Keys, stack: Stack, engine: AsyncEngine
) -> None:
    tenant = await keys.tenant()
    naive = ticket_event(tenant.id, "INC-2", NOW)
    naive["time"] = "2026-05-06T10:00:00"
    # Odd spacing on purpose: the dead letter must keep these exact bytes, not a re-encoding.
    bad = {
        b"{ this is not json": "malformed_json",
        b'{"specversion":  "1.0",   "id": "x"}': "missing_tenant",
        encoded(naive): "time_without_offset",
        encoded(ticket_event("nobody-" + tenant.id, "INC-3", NOW)): "unknown_tenant",
        b"\xc3\x28 invalid utf-8": "malformed_json",
        b"[" * 50_000: "too_deep",
    }
    good = [ticket_event(tenant.id, f"INC-{n}", NOW - timedelta(minutes=1)) for n in range(3)]
    values = [encoded(good[0]), *bad, encoded(good[1]), encoded(good[2])]
    dead = await TopicReader(stack.kafka_bootstrap, intake.settings.dead_letter_topic).start()
    out = await TopicReader(stack.kafka_bootstrap, topics.TICKETS).start()
    await produce(stack, intake.settings.ingest_topic, values, key=b"upstream-key")
    await dead.read_until(lambda records: len(records) >= len(bad))
    await out.read_until(lambda _: len(out.events(tenant.id)) >= len(good))
    await drained(engine, tenant.id)
    await out.read_to_end()
    await dead.stop()
    await out.stop()
    assert sorted(e["id"] for e in out.events(tenant.id)) == sorted(e["id"] for e in good)
    letters = {record.value: dict(record.headers) for record in dead.records}
    assert set(letters) == set(bad)
    for value, code in bad.items():
        headers = letters[value]
        assert headers["dlq-code"].decode() == code
        assert headers["dlq-reason"]
        assert headers["dlq-topic"].decode() == intake.settings.ingest_topic
        assert headers["original-origin"] == b"upstream-7"
    assert {record.key for record in dead.records} == {b"upstream-key"}


async def test_events_of_a_tenant_whose_keys_are_all_revoked_are_dead_lettered(
    intake: RunningIntake, keys: Keys, stack: Stack
) -> None:
    tenant = await keys.tenant()
    await keys.admin.revoke(tenant.key_id)
    sent = encoded(ticket_event(tenant.id, "INC-1", NOW))
    dead = await TopicReader(stack.kafka_bootstrap, intake.settings.dead_letter_topic).start()
    await produce(stack, intake.settings.ingest_topic, [sent])
    await dead.read_until(lambda records: any(r.value == sent for r in records))
    await dead.stop()
    letter = next(r for r in dead.records if r.value == sent)
    assert dict(letter.headers)["dlq-code"] == b"unknown_tenant"
