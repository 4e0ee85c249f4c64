"""The reconcile loop's due queue (`SqlTimerRepository.due_tickets`) on the real PostgreSQL.

What a round takes: round-robin across tenants (every tenant's first due ticket before anyone's second), at most
`per_tenant` of each and fewer for a capped tenant, nothing not yet due, nothing another transaction holds; the
slices of the rounds in flight are disjoint and together cover the queue; a snapshot stored while its ticket
is reconciled is neither waited for nor lost (the timer's mark). And the plan: the queue is ranked once
per round, even on statistics taken while the table was empty (the join it replaced ranked the whole queue
again for every due row: 2.3 s a round at 1,500 due tickets).

The rows are due in the year 2000, so no other test's timers (due now) are in the way.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sla_engine import tables
from sla_engine.bundles.cache import BundleCache
from sla_engine.bundles.repository import SqlBundleRepository
from sla_engine.clocks.due_queue import DUE_TICKETS, SqlTimerRepository
from sla_engine.clocks.evaluation import Job, Outcome, Sources
from sla_engine.clocks.handlers import ClockKeeper
from sla_engine.domain.bundle import dump_bundle, parse_bundle
from sla_engine.ports import EVENTS_DUE
from sla_engine.unit_of_work import engine_units
from tests.integration.sla_engine.conftest import Clock
from tests.integration.sla_engine.test_clock_sequences import BUNDLE, T0, records
from tests.support.events import ticket_event

pytestmark = pytest.mark.integration

NOW = datetime(2000, 1, 3, tzinfo=UTC)


async def queue(sessions: async_sessionmaker[AsyncSession], counts: dict[str, int]) -> dict[str, str]:
    """Due rows per tenant (their tickets due a second apart, oldest first; each tenant's a tenth of a second
    after the previous tenant's) plus one not yet due each; returns the tenants' unique names by label."""
    names = {label: f"due-{label}-{uuid.uuid4().hex[:6]}" for label in counts}
    rows = []
    for place, (label, count) in enumerate(counts.items()):
        rows += [
            {
                "tenant_id": names[label],
                "ticket_id": f"T{n:04}",
                "transition": "events",
                "due_at": NOW - timedelta(days=1) + timedelta(seconds=n + place / 10),
            }
            for n in range(count)
        ]
        rows.append(
            {
                "tenant_id": names[label],
                "ticket_id": "LATER",
                "transition": "warning",
                "due_at": NOW + timedelta(hours=1),
            }
        )
    async with sessions() as session, session.begin():
        await session.execute(sa.insert(tables.timers), rows)
    return names


async def drop(sessions: async_sessionmaker[AsyncSession], names: dict[str, str]) -> None:
    async with sessions() as session, session.begin():
        await session.execute(sa.delete(tables.timers).where(tables.timers.c.tenant_id.in_(list(names.values()))))


async def test_a_round_takes_tenants_in_turn_within_their_caps(sessions: async_sessionmaker[AsyncSession]) -> None:
    names = await queue(sessions, {"big": 120, "small": 5, "capped": 30})
    try:
        async with sessions() as session, session.begin():
            due = await SqlTimerRepository(session).due_tickets(NOW, 60, 20, {names["capped"]: 3})
        taken = Counter(timer.tenant_id for timer in due)
        assert taken == {names["big"]: 20, names["small"]: 5, names["capped"]: 3}
        assert all(timer.ticket_id != "LATER" for timer in due)
        # Turn by turn: the first 3 rows are each tenant's earliest ticket, in due order.
        assert [(t.tenant_id, t.ticket_id) for t in due[:3]] == [
            (names["big"], "T0000"),
            (names["small"], "T0000"),
            (names["capped"], "T0000"),
        ]
        assert [t.ticket_id for t in due if t.tenant_id == names["big"]] == [f"T{n:04}" for n in range(20)]

        # The limit cuts into a turn, earliest due first: every tenant's first ticket, then big's second.
        async with sessions() as session, session.begin():
            due = await SqlTimerRepository(session).due_tickets(NOW, 4, 20)
        assert [(t.tenant_id, t.ticket_id) for t in due] == [
            (names["big"], "T0000"),
            (names["small"], "T0000"),
            (names["capped"], "T0000"),
            (names["big"], "T0001"),
        ]
    finally:
        await drop(sessions, names)


async def test_rows_held_elsewhere_are_skipped_and_slices_part_the_queue(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    names = await queue(sessions, {"one": 40, "two": 40})
    everything = {(names[label], f"T{n:04}") for label in ("one", "two") for n in range(40)}
    try:
        async with sessions() as holder, holder.begin():
            held = await SqlTimerRepository(holder).due_tickets(NOW, 10, 100)
            assert len(held) == 10
            async with sessions() as other, other.begin():
                rest = await SqlTimerRepository(other).due_tickets(NOW, 1000, 1000)
            assert {(t.tenant_id, t.ticket_id) for t in rest} == everything - {(t.tenant_id, t.ticket_id) for t in held}

        slices = []
        for index in range(2):
            async with sessions() as session, session.begin():
                due = await SqlTimerRepository(session).due_tickets(NOW, 1000, 1000, part=(index, 2))
                slices.append({(t.tenant_id, t.ticket_id) for t in due})
        assert slices[0]
        assert slices[1]
        assert not slices[0] & slices[1]
        assert slices[0] | slices[1] == everything
    finally:
        await drop(sessions, names)


def window_loops(plan: dict[str, Any]) -> list[int]:
    """The actual loops of every WindowAgg node of an EXPLAIN (ANALYZE, FORMAT JSON) plan."""
    found = [plan["Actual Loops"]] if plan["Node Type"] == "WindowAgg" else []
    for child in plan.get("Plans", []):
        found += window_loops(child)
    return found


async def test_the_queue_is_ranked_once_even_on_statistics_of_an_empty_table(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    names = {"stale": f"due-stale-{uuid.uuid4().hex[:6]}"}
    async with sessions() as session, session.begin():
        # Statistics say what an ANALYZE of an almost empty queue says; then 1,500 tickets come due.
        await session.execute(sa.text("UPDATE pg_class SET reltuples = 1 WHERE relname = 'timers'"))
        await session.execute(
            sa.insert(tables.timers),
            [
                {
                    "tenant_id": names["stale"],
                    "ticket_id": f"T{n:04}",
                    "transition": "events",
                    "due_at": NOW - timedelta(seconds=n),
                }
                for n in range(1500)
            ],
        )
        explained = await session.execute(
            sa.text(f"EXPLAIN (ANALYZE, FORMAT JSON) {DUE_TICKETS.text}"),
            {
                "now": NOW,
                "limit": 200,
                "candidates": 600,
                "per_tenant": 50,
                "cap_tenants": [],
                "cap_counts": [],
                "part": 0,
                "parts": 1,
            },
        )
        plan = explained.scalar_one()
        plan = json.loads(plan) if isinstance(plan, str) else plan
        await session.rollback()
    assert window_loops(plan[0]["Plan"]) == [1]


async def test_a_snapshot_stored_while_its_ticket_is_reconciled_is_not_waited_for_nor_lost(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The consumer stores a ticket's resolution while a round holds the ticket, between the round's read of the
    timeline and its save. The consumer does not wait for the round; the round, having read the older timeline,
    leaves the ticket due instead of setting its warning timer; the next round sees the resolution."""
    tenant = f"mark-{uuid.uuid4().hex[:8]}"
    async with sessions() as session, session.begin():
        await SqlBundleRepository(session).add_config(tenant, dump_bundle(parse_bundle(BUNDLE)), BUNDLE)
    now = Clock(T0 + timedelta(hours=1))
    keeper = ClockKeeper(engine_units(sessions), BundleCache(), now)
    await keeper.on_ticket_records(records([ticket_event(tenant, "INC-1", T0)]))
    resolved = records(
        [ticket_event(tenant, "INC-1", T0 + timedelta(minutes=30), action="resolved", status="resolved")]
    )
    evaluate = keeper._evaluator.evaluate  # the seam between the round's read and its save

    async def resolution_arrives_first(jobs: Sequence[Job], at: datetime, sources: Sources) -> list[Outcome]:
        # The round holds INC-1 (its advisory lock) and has read its timeline: the consumer must not wait.
        await asyncio.wait_for(keeper.on_ticket_records(resolved), timeout=60)
        return await evaluate(jobs, at, sources)

    keeper._evaluator.evaluate = resolution_arrives_first  # type: ignore[method-assign,assignment]
    assert await keeper.reconcile_due(limit=10, per_tenant=10, budget_seconds=60, part=(0, 1)) >= 1
    keeper._evaluator.evaluate = evaluate  # type: ignore[method-assign]

    async with sessions() as session:
        timer = (await session.execute(sa.select(tables.timers).where(tables.timers.c.tenant_id == tenant))).one()
        state = (
            await session.execute(sa.select(tables.clocks.c.state).where(tables.clocks.c.tenant_id == tenant))
        ).scalar_one()
    assert (timer.due_at, timer.transition) == (now.at, EVENTS_DUE)  # still due, not the warning timer
    assert state == "running"  # what the round saw
    await keeper.reconcile_due(limit=10, per_tenant=10, budget_seconds=60)
    async with sessions() as session:
        timers = (await session.execute(sa.select(tables.timers).where(tables.timers.c.tenant_id == tenant))).all()
        state = (
            await session.execute(sa.select(tables.clocks.c.state).where(tables.clocks.c.tenant_id == tenant))
        ).scalar_one()
    assert (timers, state) == ([], "met")
