"""A record intake cannot store is set aside once; its partition keeps flowing; a database outage sets nothing aside."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from scripts.localstack import Stack
from slm_shared import topics
from tests.integration.intake.support import Keys, TopicReader, ensure_topic, intake_settings, running_intake
from tests.support.events import ticket_event
from tests.support.poison import (
    PrivatePostgres,
    committed,
    consumed,
    eventually,
    produce,
    rewind,
    set_aside_rows,
)

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


def encoded(event: dict[str, object]) -> bytes:
    return json.dumps(event).encode()


@asynccontextmanager
async def database_refusing(engine: AsyncEngine, event_id: str) -> AsyncIterator[None]:
    """A real PostgreSQL trigger that refuses to store one event id, like a constraint the data breaks.

    Inputs that made the database refuse a valid event (over-long keys, NUL bytes, out-of-range times) are now
    rejected at the door, so the test makes the database refuse this one record itself.
    """
    name = f"refuse_{uuid.uuid4().hex[:8]}"
    async with engine.begin() as connection:
        await connection.execute(
            sa.text(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.event_id = '{event_id}' THEN RAISE EXCEPTION 'event refused by the test trigger'; END IF; "
                "RETURN NEW; END $$"
            )
        )
        await connection.execute(
            sa.text(f"CREATE TRIGGER {name} BEFORE INSERT ON received_events FOR EACH ROW EXECUTE FUNCTION {name}()")
        )
    try:
        yield
    finally:
        async with engine.begin() as connection:
            await connection.execute(sa.text(f"DROP TRIGGER {name} ON received_events"))
            await connection.execute(sa.text(f"DROP FUNCTION {name}()"))


async def test_a_record_the_database_refuses_is_set_aside_once_and_a_restart_does_not_process_it_again(
    keys: Keys, stack: Stack, engine: AsyncEngine
) -> None:
    tenant = await keys.tenant("poison")
    settings = intake_settings(stack)
    group, ingest = settings.kafka.group_id, settings.ingest_topic
    assert group is not None
    good = [ticket_event(tenant.id, f"INC-{n}", NOW - timedelta(minutes=5)) for n in range(6)]
    # A valid event the database refuses to store (a trigger raises for its id).
    poison = ticket_event(tenant.id, "INC-P", NOW - timedelta(minutes=5), event_id=f"poison-{uuid.uuid4().hex}")
    await ensure_topic(stack.kafka_bootstrap, ingest)
    reader = await TopicReader(stack.kafka_bootstrap, topics.TICKETS).start()
    async with database_refusing(engine, str(poison["id"])), running_intake(settings):
        sent = await produce(
            stack.kafka_bootstrap, ingest, [encoded(e) for e in [*good[:3], poison, *good[3:]]], key=tenant.id.encode()
        )
        partition, end = sent[-1][0], sent[-1][1] + 1
        await reader.read_until(lambda _: len(reader.events(tenant.id)) >= len(good))

        async def offsets_moved_on() -> bool:
            return await committed(stack.kafka_bootstrap, group, ingest, partition) == end

        await eventually(offsets_moved_on, "the ingest offsets committed past the poison record")

    rows = await set_aside_rows(engine, group)
    assert [(r.topic, r.partition, r.offset, r.tenant_id) for r in rows] == [(ingest, partition, sent[3][1], tenant.id)]
    assert rows[0].value == encoded(poison)
    assert "event refused by the test trigger" in rows[0].reason

    # A crash before the commit: the group starts again from the first record; the poison one is skipped.
    await rewind(stack.kafka_bootstrap, group, ingest, partition, sent[0][1])
    skipped_before = consumed(ingest, "skipped")
    async with running_intake(settings):
        later = ticket_event(tenant.id, "INC-7", NOW - timedelta(minutes=5))
        await produce(stack.kafka_bootstrap, ingest, [encoded(later)], key=tenant.id.encode())
        await reader.read_until(lambda _: len(reader.events(tenant.id)) >= len(good) + 1)

        async def caught_up() -> bool:
            return await committed(stack.kafka_bootstrap, group, ingest, partition) == end + 1

        await eventually(caught_up, "the restarted consumer committed its offsets")
    await reader.read_to_end()
    await reader.stop()
    assert sorted(e["id"] for e in reader.events(tenant.id)) == sorted(e["id"] for e in [*good, later])
    assert len(await set_aside_rows(engine, group)) == 1
    assert consumed(ingest, "skipped") == skipped_before + 1


async def test_while_the_database_is_down_records_wait_and_none_is_set_aside(
    keys: Keys, stack: Stack, engine: AsyncEngine
) -> None:
    postgres = PrivatePostgres()
    tenant = await keys.tenant("outage")
    settings = intake_settings(stack)
    group, ingest = settings.kafka.group_id, settings.ingest_topic
    assert group is not None
    events = [ticket_event(tenant.id, f"INC-{n}", NOW - timedelta(minutes=5)) for n in range(5)]
    await ensure_topic(stack.kafka_bootstrap, ingest)
    async with running_intake(settings):
        errors_before = consumed(ingest, "error")
        await postgres.stop()
        try:
            await produce(stack.kafka_bootstrap, ingest, [encoded(e) for e in events], key=tenant.id.encode())

            async def met_the_outage() -> bool:
                return consumed(ingest, "error") > errors_before

            await eventually(met_the_outage, "the consumer met the database away")
        finally:
            await postgres.start()

        async def all_accepted() -> bool:
            async with engine.connect() as connection:
                return bool(
                    (
                        await connection.execute(
                            sa.text("SELECT count(*) FROM outbox WHERE topic = :topic AND key LIKE :prefix"),
                            {"topic": topics.TICKETS, "prefix": f"{tenant.id}/%"},
                        )
                    ).scalar_one()
                    == len(events)
                )

        await eventually(all_accepted, "every record accepted once the database is back")
    assert await set_aside_rows(engine, group) == []
