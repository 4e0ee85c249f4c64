"""Loading timelines through the `TimelineCache` against the real PostgreSQL: the same timelines as without it.

The cache's rule (sla_engine/timeline_cache.py): rows are listed from the database on every load and only
rows not decoded yet are read whole, so new rows appear, rows of a rolled-back transaction never do, and a
cache that evicted tickets still gives the full timelines.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.engine_scale.workload import make_tickets
from sla_engine.clocks.states import SqlClockStateRepository
from sla_engine.clocks.tickets import SqlTicketRepository
from sla_engine.clocks.timeline_cache import TimelineCache
from sla_engine.domain.timeline import TicketSnapshot, ordered_timeline

pytestmark = pytest.mark.integration
SOURCE = "test://timeline-cache"


async def store(sessions: async_sessionmaker[AsyncSession], tenant: str, snapshots: list[TicketSnapshot]) -> None:
    async with sessions() as session, session.begin():
        await SqlTicketRepository(session).add_snapshots([(tenant, SOURCE, snapshot) for snapshot in snapshots])


async def timelines(
    sessions: async_sessionmaker[AsyncSession], pairs: list[tuple[str, str]], cache: TimelineCache | None
) -> dict[tuple[str, str], list[tuple[str, str, str]]]:
    """Each ticket's timeline as (event id, status, priority), in the order load_states gives it."""
    async with sessions() as session, session.begin():
        states = await SqlClockStateRepository(session, cache).load_states(pairs)
    return {
        (state.tenant_id, state.ticket_id): [(s.event_id, s.status, s.priority) for s in state.timeline]
        for state, _ in states
    }


async def test_cached_loads_give_the_timelines_uncached_loads_give(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant = f"cache-{uuid.uuid4().hex[:8]}"
    tickets = make_tickets(6, policies=10, seed=5)
    pairs = [(tenant, ticket.ticket_id) for ticket in tickets]
    half = {ticket.ticket_id: len(ticket.snapshots) // 2 for ticket in tickets}
    await store(sessions, tenant, [s for t in tickets for s in t.snapshots[: half[t.ticket_id]]])
    cache = TimelineCache(max_tickets=4)  # fewer than the tickets: loads must not depend on what stayed cached

    first = await timelines(sessions, pairs, cache)
    assert first == await timelines(sessions, pairs, None)
    assert all(len(first[pair]) == half[pair[1]] for pair in pairs)

    await store(sessions, tenant, [s for t in tickets for s in t.snapshots[half[t.ticket_id] :]])
    complete = await timelines(sessions, pairs, cache)
    assert complete == await timelines(sessions, pairs, None)
    assert all(len(complete[(tenant, t.ticket_id)]) == len(t.snapshots) for t in tickets)
    assert complete == await timelines(sessions, pairs, cache)  # a load served mostly from the cache


async def test_a_row_read_in_a_rolled_back_transaction_never_shows_up(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant = f"cache-{uuid.uuid4().hex[:8]}"
    ticket = make_tickets(1, policies=1, seed=9)[0]
    pair = (tenant, ticket.ticket_id)
    cache = TimelineCache()
    await store(sessions, tenant, list(ticket.snapshots[:2]))
    late = TicketSnapshot(
        **{
            **vars(ticket.snapshots[0]),
            "event_id": "rolled-back",
            "time": ticket.snapshots[0].time + timedelta(seconds=1),
        }
    )
    async with sessions() as session:
        transaction = await session.begin()
        await SqlTicketRepository(session).add_snapshots([(tenant, SOURCE, late)])
        states = await SqlClockStateRepository(session, cache).load_states([pair])
        assert "rolled-back" in [s.event_id for s in states[0][0].timeline]  # seen, and cached, inside it
        await transaction.rollback()
    after = await timelines(sessions, [pair], cache)
    assert [event_id for event_id, _, _ in after[pair]] == [s.event_id for s in ordered_timeline(ticket.snapshots[:2])]
    assert after == await timelines(sessions, [pair], None)
