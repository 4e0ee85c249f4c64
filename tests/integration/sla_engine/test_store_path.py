"""The ticket consumer's store path on the real PostgreSQL: one statement per batch, the same effects as before.

A batch with a record repeated inside it, a redelivered record, a tenant with no configuration and two events
of one ticket: the inbox passes each key once, the snapshots join the timelines in batch order, only the
configured tenant's tickets are made due (keeping an earlier timer, carrying the newest trace context), and the
whole batch delivered again changes nothing.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sla_engine import tables
from sla_engine.bundles.cache import BundleCache
from sla_engine.bundles.repository import SqlBundleRepository
from sla_engine.clocks.handlers import ClockKeeper
from sla_engine.clocks.tickets import SqlTicketRepository
from sla_engine.domain.bundle import dump_bundle, parse_bundle
from sla_engine.ports import EVENTS_DUE
from sla_engine.unit_of_work import engine_units
from slm_shared import topics
from tests.integration.sla_engine.conftest import Clock
from tests.integration.sla_engine.test_clock_sequences import BUNDLE
from tests.support.events import ticket_event

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 8, tzinfo=UTC)
TRACE_A = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACE_B = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"


def record(offset: int, event: dict[str, Any] | str, traceparent: str | None = None) -> ConsumerRecord[bytes, bytes]:
    value = json.dumps(event).encode()
    headers = [("traceparent", traceparent.encode())] if traceparent else []
    return ConsumerRecord(topics.TICKETS, 0, offset, 0, 0, None, value, None, 0, len(value), headers)


async def rows(sessions: async_sessionmaker[AsyncSession], table: sa.Table, tenant: str) -> list[Any]:
    async with sessions() as session:
        order = table.c.arrival if table is tables.ticket_events else table.c.ticket_id
        return list(await session.execute(sa.select(table).where(table.c.tenant_id == tenant).order_by(order)))


async def test_one_batch_stores_each_snapshot_once_and_makes_configured_tickets_due(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant, stranger = f"store-{uuid.uuid4().hex[:8]}", f"unconfigured-{uuid.uuid4().hex[:8]}"
    async with sessions() as session, session.begin():
        await SqlBundleRepository(session).add_config(tenant, dump_bundle(parse_bundle(BUNDLE)), BUNDLE)
    clock = Clock(T0 + timedelta(days=1))
    keeper = ClockKeeper(engine_units(sessions), BundleCache(), clock)

    # INC-2 already has an earlier breach timer: being made due "now" must not move it later.
    earlier = T0 + timedelta(hours=3)
    async with sessions() as session, session.begin():
        await session.execute(
            sa.insert(tables.timers).values(tenant_id=tenant, ticket_id="INC-2", due_at=earlier, transition="breached")
        )
    created = ticket_event(tenant, "INC-1", T0)
    # Later in the batch but earlier in event time: the timeline orders by event time, then by arrival.
    replied = ticket_event(tenant, "INC-1", T0 - timedelta(minutes=5), action="updated", status="in_progress")
    other = ticket_event(tenant, "INC-2", T0 + timedelta(hours=1))
    foreign = ticket_event(stranger, "X-1", T0)
    batch = [
        record(0, created, TRACE_A),
        record(1, created, TRACE_B),
        record(2, replied, TRACE_B),
        record(3, replied),
        record(4, other),
        record(5, foreign),
        record(6, "not an object"),
    ]

    outcomes = await keeper.on_ticket_records(batch)

    assert outcomes == ["applied", "duplicate", "applied", "duplicate", "applied", "applied", "rejected"]
    stored = await rows(sessions, tables.ticket_events, tenant)
    assert [(row.ticket_id, row.event_id) for row in stored] == [
        ("INC-1", created["id"]),
        ("INC-1", replied["id"]),
        ("INC-2", other["id"]),
    ]
    assert stored[1].snapshot == {
        "action": "updated",
        "kind": replied["data"]["kind"],
        "status": "in_progress",
        "priority": replied["data"]["priority"],
        "service": replied["data"]["service"],
        "customer": replied["data"]["customer"],
        "assignment_group": replied["data"].get("assignment_group"),
        "assignee": replied["data"].get("assignee"),
        "attributes": replied["data"].get("attributes", {}),
    }
    async with sessions() as session:
        timeline = await SqlTicketRepository(session).timeline(tenant, "INC-1")
    assert [snapshot.event_id for snapshot in timeline] == [replied["id"], created["id"]]
    assert len(await rows(sessions, tables.ticket_events, stranger)) == 1
    assert await rows(sessions, tables.timers, stranger) == []
    timers = {row.ticket_id: row for row in await rows(sessions, tables.timers, tenant)}
    # INC-1's newest event with a trace context is the record at offset 2 (offset 3 has none).
    assert (timers["INC-1"].due_at, timers["INC-1"].transition, timers["INC-1"].traceparent) == (
        clock.at,
        EVENTS_DUE,
        TRACE_B,
    )
    assert (timers["INC-2"].due_at, timers["INC-2"].transition, timers["INC-2"].traceparent) == (
        earlier,
        "breached",
        None,
    )
    assert keeper.tickets_due.is_set()

    keeper.tickets_due.clear()
    clock.at += timedelta(minutes=1)
    again = await keeper.on_ticket_records(batch)

    assert again == ["duplicate"] * 6 + ["rejected"]
    assert len(await rows(sessions, tables.ticket_events, tenant)) == 3
    assert {row.ticket_id: row.due_at for row in await rows(sessions, tables.timers, tenant)} == {
        "INC-1": clock.at - timedelta(minutes=1),
        "INC-2": earlier,
    }
    assert not keeper.tickets_due.is_set()
