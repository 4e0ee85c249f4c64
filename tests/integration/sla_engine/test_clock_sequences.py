"""The per-cycle `sequence` of sla.clock.v1 on the real PostgreSQL: counted across batches, in the outbox.

One ticket in three batches (issue 18): created and left to breach, a late pause that retracts the breach,
then the resume and the stop. Every clock event of the cycle is numbered 1..n across the three transactions
(the counter is stored with the outbox rows), ids are unique, and the highest number carries the clock.
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
from sla_engine.domain.bundle import dump_bundle, parse_bundle
from sla_engine.unit_of_work import engine_units
from slm_shared import topics
from tests.integration.sla_engine.conftest import Clock
from tests.support.events import ticket_event

pytestmark = pytest.mark.integration

BUNDLE = """\
policies:
  - id: gold-resolution
    name: Gold resolution
    agreement: SLA
    match: {kind: incident}
    metrics:
      - metric: resolution
        calendar: 24x7
        targets: {P2: 8h}
        pause: {statuses: [pending_customer]}
        stop: {statuses: [resolved]}
        warn_at: [50, 75]
"""
T0 = datetime(2026, 11, 2, 8, tzinfo=UTC)


def records(events: list[dict[str, Any]]) -> list[ConsumerRecord[bytes, bytes]]:
    values = [json.dumps(event).encode() for event in events]
    return [
        ConsumerRecord(topics.TICKETS, 0, offset, 0, 0, None, value, None, 0, len(value), [])
        for offset, value in enumerate(values)
    ]


async def clock_events(sessions: async_sessionmaker[AsyncSession], tenant: str) -> list[dict[str, Any]]:
    o = tables.outbox
    async with sessions() as session:
        rows = await session.execute(
            sa.select(o.c.payload).where(o.c.topic == topics.CLOCKS, o.c.key.like(f"{tenant}/%")).order_by(o.c.id)
        )
    return [json.loads(row.payload) for row in rows]


async def test_a_cycle_numbers_its_events_across_batches_and_ends_on_the_clock(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant = f"seq-{uuid.uuid4().hex[:8]}"
    async with sessions() as session, session.begin():
        await SqlBundleRepository(session).add_config(tenant, dump_bundle(parse_bundle(BUNDLE)), BUNDLE)
    now = Clock(T0 + timedelta(days=20))
    keeper = ClockKeeper(engine_units(sessions), BundleCache(), now)

    def at(hours: int, **fields: Any) -> dict[str, Any]:
        return ticket_event(tenant, "INC-1", T0 + timedelta(hours=hours), **fields)

    batches = [
        [at(0)],
        [at(5, action="updated", status="pending_customer")],
        [at(7, action="updated", status="in_progress"), at(16, action="resolved", status="resolved")],
    ]

    async def consume(events: list[dict[str, Any]]) -> None:
        await keeper.on_ticket_records(records(events))
        await keeper.reconcile_due(limit=10, per_tenant=10, budget_seconds=60)  # the reconcile loop's round

    for batch in batches:
        await consume(batch)
        now.at += timedelta(minutes=1)
    events = await clock_events(sessions, tenant)
    await consume(batches[1])  # a redelivered batch publishes nothing
    # Nor does a snapshot that leaves the stopped cycle as it is (its saved row read back through JSONB).
    await consume([at(30, action="updated", status="resolved")])
    assert await clock_events(sessions, tenant) == events

    assert [e["data"]["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert len({e["id"] for e in events}) == len(events)
    assert "recalculated" in [e["data"]["transition"] for e in events]
    async with sessions() as session:
        counted = (
            (
                await session.execute(
                    sa.select(tables.cycle_sequences.c.sequence).where(tables.cycle_sequences.c.tenant_id == tenant)
                )
            )
            .scalars()
            .all()
        )
        clock = (
            await session.execute(sa.select(tables.clocks.c.clock).where(tables.clocks.c.tenant_id == tenant))
        ).scalar_one()
    assert counted == [len(events)]
    last = events[-1]["data"]
    assert (last["state"], last["breached"], last["elapsed_seconds"]) == ("breached", True, 14 * 3600)
    assert {k: v for k, v in last.items() if k not in ("transition", "sequence", "threshold", "retracts")} == {
        k: v for k, v in clock.items() if k not in ("transition", "sequence", "threshold", "retracts")
    }
