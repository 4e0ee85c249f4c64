"""The outbox relay on the real PostgreSQL and Kafka: every committed row published exactly once."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from scripts.localstack import Stack
from slm_shared.db import create_engine, session_factory
from slm_shared.events import TICKET_EVENT, TicketSnapshotData, make_event
from slm_shared.outbox import Outbox, OutboxRelay, OutgoingEvent, asyncpg_dsn, define_outbox_table
from tests.support.kafka import collect

pytestmark = pytest.mark.integration

WRITERS = 8
ROWS_PER_WRITER = 250


@pytest.fixture
async def scratch_database(stack: Stack) -> AsyncIterator[str]:
    """A throwaway database with only an outbox table, so no running service relays it."""
    base = stack.database_urls["intake"].rsplit("/", 1)[0]
    name = f"outbox_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(asyncpg_dsn(f"{base}/postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{base}/{name}"
    engine = create_engine(url)
    metadata = sa.MetaData()
    define_outbox_table(metadata)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    await engine.dispose()
    yield url
    await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.close()


def snapshot_event(tenant: str, topic: str, number: int, ticket: str | None = None) -> OutgoingEvent:
    data = TicketSnapshotData(
        ticket_id=ticket or f"T-{number}",
        action="created",
        kind="incident",
        service="email",
        customer="acme",
        priority="P2",
        status="new",
    )
    event = make_event(
        event_id=f"e-{number}",
        source="test://outbox",
        event_type=TICKET_EVENT,
        time=datetime.now(UTC),
        tenant_id=tenant,
        subject=data.ticket_id,
        data=data,
    )
    return OutgoingEvent(topic=topic, key=f"{tenant}/{data.ticket_id}", event=event)


async def test_concurrent_writers_have_every_row_published_exactly_once(stack: Stack, scratch_database: str) -> None:
    tenant = f"outbox-{uuid.uuid4().hex[:8]}"
    topic = f"test.outbox.{uuid.uuid4().hex[:8]}"
    engine = create_engine(scratch_database, pool_size=WRITERS)
    sessions = session_factory(engine)
    metadata = sa.MetaData()
    outbox = Outbox(define_outbox_table(metadata))
    # Two relays compete for the same rows, as two replicas would.
    producer_options = {"bootstrap_servers": stack.kafka_bootstrap}
    relays = [
        OutboxRelay(
            dsn=asyncpg_dsn(scratch_database), producer_options=producer_options, batch_size=50, poll_seconds=0.05
        )
        for _ in range(2)
    ]
    for relay in relays:
        await relay.start()

    async def writer(index: int) -> None:
        rng = random.Random(index)
        numbers = list(range(index * ROWS_PER_WRITER, (index + 1) * ROWS_PER_WRITER))
        while numbers:
            size = rng.randint(1, 7)
            chunk, numbers = numbers[:size], numbers[size:]
            async with sessions() as session, session.begin():
                await outbox.add(session, [snapshot_event(tenant, topic, n) for n in chunk])
                # Hold some transactions open so later ids commit first: the "id > last seen" trap.
                await asyncio.sleep(rng.random() * 0.02)

    await asyncio.gather(*(writer(i) for i in range(WRITERS)))
    expected = WRITERS * ROWS_PER_WRITER
    events = await collect(stack.kafka_bootstrap, topic, lambda got: len(got) >= expected, tenant=tenant, within=90)
    for relay in relays:
        await relay.stop()
    async with engine.connect() as connection:
        unpublished = (
            await connection.execute(sa.text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
        ).scalar()
    await engine.dispose()

    ids = [event["id"] for event in events]
    assert len(ids) == expected
    assert len(set(ids)) == expected
    assert set(ids) == {f"e-{n}" for n in range(expected)}
    assert unpublished == 0


async def test_two_relays_publish_each_tickets_rows_in_the_order_they_were_committed(
    stack: Stack, scratch_database: str
) -> None:
    """A backlog of each ticket's events in commit order (a service catching up after an outage), then two
    relays (two replicas) at once: each ticket's events must reach its partition in that order, as consumers
    of `sla.clocks.v1` read a cycle's sequence. Relays that shared the rows published one relay's batch of a
    ticket before the other's earlier one."""
    tenant = f"outbox-{uuid.uuid4().hex[:8]}"
    topic = f"test.outbox.{uuid.uuid4().hex[:8]}"
    tickets, per_ticket = 8, 40
    engine = create_engine(scratch_database)
    outbox = Outbox(define_outbox_table(sa.MetaData()))
    async with session_factory(engine)() as session, session.begin():
        await outbox.add(
            session,
            [
                snapshot_event(tenant, topic, t * per_ticket + n, f"T-{t}")
                for t in range(tickets)
                for n in range(per_ticket)
            ],
        )
    await engine.dispose()
    producer_options = {"bootstrap_servers": stack.kafka_bootstrap}
    # Small batches: a ticket's events span many of them, taken by both relays in turn.
    relays = [
        OutboxRelay(
            dsn=asyncpg_dsn(scratch_database), producer_options=producer_options, batch_size=4, poll_seconds=0.01
        )
        for _ in range(2)
    ]
    await asyncio.gather(*(relay.start() for relay in relays))
    events = await collect(
        stack.kafka_bootstrap, topic, lambda got: len(got) >= tickets * per_ticket, tenant=tenant, within=90
    )
    for relay in relays:
        await relay.stop()

    published: dict[str, list[str]] = {}
    for event in events:
        published.setdefault(event["subject"], []).append(event["id"])
    assert published == {f"T-{t}": [f"e-{t * per_ticket + n}" for n in range(per_ticket)] for t in range(tickets)}


async def test_a_relay_frozen_in_the_middle_of_a_pass_does_not_hold_the_other_replicas_back(
    stack: Stack, scratch_database: str
) -> None:
    """A replica that stops without dying (a paused pod, an event loop blocked by other work) while it holds the
    publishing lock: the server ends its stalled transaction, so the other replica takes the lock and publishes.
    Before the relay set `idle_in_transaction_session_timeout`, the lock stayed taken for as long as the frozen
    replica's connection lived, and no row of the database was published meanwhile."""
    tenant = f"outbox-{uuid.uuid4().hex[:8]}"
    topic = f"test.outbox.{uuid.uuid4().hex[:8]}"
    engine = create_engine(scratch_database)
    async with session_factory(engine)() as session, session.begin():
        await Outbox(define_outbox_table(sa.MetaData())).add(session, [snapshot_event(tenant, topic, 1)])
    await engine.dispose()
    producer_options = {"bootstrap_servers": stack.kafka_bootstrap}
    frozen = OutboxRelay(
        dsn=asyncpg_dsn(scratch_database), producer_options=producer_options, poll_seconds=0.05, stalled_pass_seconds=1
    )
    healthy = OutboxRelay(dsn=asyncpg_dsn(scratch_database), producer_options=producer_options, poll_seconds=0.05)
    inside, release = asyncio.Event(), asyncio.Event()
    await frozen.start()
    assert frozen._producer is not None
    send = frozen._producer.send

    async def stall(*args: Any, **kwargs: Any) -> Any:
        inside.set()  # the pass holds the lock and the row now
        await release.wait()
        return await send(*args, **kwargs)

    frozen._producer.send = stall
    try:
        await asyncio.wait_for(inside.wait(), 30)
        await healthy.start()
        events = await collect(stack.kafka_bootstrap, topic, lambda got: len(got) >= 1, tenant=tenant, within=30)
    finally:
        release.set()
        await frozen.stop()
        await healthy.stop()
    assert [event["id"] for event in events] == ["e-1"]
