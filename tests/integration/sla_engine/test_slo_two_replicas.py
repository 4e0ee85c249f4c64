"""Two sla-engine replicas rewrite the same availability minutes, on the real PostgreSQL.

Every replica's periodic SLO pass (and the signal batches of its partitions) deletes and re-inserts a service's
availability minutes from some instant on. Two of them at once used to collide on the minutes' primary key
(`duplicate key value violates unique constraint "slo_availability_minutes_pkey"`, seen with two instances in
the fault run). Here one replica's rewrite is held open in a transaction while the other's pass runs into it;
the second must wait, then compute from what the first committed and succeed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scripts.localstack import Stack
from sla_engine import tables
from sla_engine.bundles.cache import BundleCache
from sla_engine.bundles.repository import SqlBundleRepository
from sla_engine.domain.bundle import dump_bundle, parse_bundle
from sla_engine.domain.slo.rollups import availability_minutes, minute_of
from sla_engine.slos.handlers import SloKeeper
from sla_engine.slos.rollups import SqlRollupRepository
from sla_engine.slos.signals import SqlSignalRepository
from sla_engine.unit_of_work import engine_units
from slm_shared.db import create_engine, session_factory
from tests.integration.sla_engine.conftest import Clock
from tests.integration.sla_engine.test_slo_signals import availability

pytestmark = pytest.mark.integration

BUNDLE = """\
slos:
  - {id: email-availability, service: email, sli: {type: availability}, objective: 99.9, window: {calendar: month}}
"""
AT = datetime(2026, 11, 10, 12, tzinfo=UTC)
WAIT_LIMIT_SECONDS = 60.0  # a guard against a hang, not a measurement


@pytest.fixture
async def other_replica(stack: Stack) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The second replica's own pool (its own process in production)."""
    engine = create_engine(stack.database_urls["sla-engine"], pool_size=2)
    yield session_factory(engine)
    await engine.dispose()


def failures() -> float:
    return REGISTRY.get_sample_value("slm_background_failures_total", {"task": "slo evaluation"}) or 0.0


async def lock_waiters(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(
            (
                await session.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock'"
                    )
                )
            ).scalar_one()
        )


async def until_someone_waits_for_a_lock(
    sessions: async_sessionmaker[AsyncSession], running: asyncio.Task[int]
) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_LIMIT_SECONDS
    while await lock_waiters(sessions) == 0:
        assert not running.done(), "the second replica's pass ended without meeting the first one's rewrite"
        assert asyncio.get_running_loop().time() < deadline, "the second replica never reached the minutes"
        await asyncio.sleep(0.05)


async def stored_minutes(sessions: async_sessionmaker[AsyncSession], tenant: str) -> dict[datetime, int]:
    a = tables.slo_availability_minutes
    async with sessions() as session:
        rows = await session.execute(sa.select(a.c.minute, a.c.down_seconds).where(a.c.tenant_id == tenant))
    return {row.minute: row.down_seconds for row in rows}


async def test_a_replica_rewriting_the_minutes_another_has_not_committed_yet_waits_and_succeeds(
    sessions: async_sessionmaker[AsyncSession], other_replica: async_sessionmaker[AsyncSession]
) -> None:
    tenant = f"two-{uuid.uuid4().hex[:8]}"
    async with sessions() as session, session.begin():
        await SqlBundleRepository(session).add_config(tenant, dump_bundle(parse_bundle(BUNDLE)), BUNDLE)
    first = SloKeeper(engine_units(sessions), BundleCache(), Clock(AT), status_interval_seconds=0)
    second = SloKeeper(
        engine_units(other_replica), BundleCache(), Clock(AT + timedelta(minutes=5)), status_interval_seconds=0
    )
    await first.on_signal_records(
        [availability(tenant, "2026-11-10T11:00:00", "up"), availability(tenant, "2026-11-10T11:30:00", "down")]
    )
    before = failures()

    # The first replica's pass, caught between its rewrite of the minutes and its commit: an hour from 11:00.
    start = datetime(2026, 11, 10, 11, tzinfo=UTC)
    async with sessions() as session, session.begin():
        rollups = SqlRollupRepository(session)
        await rollups.lock_availability(tenant, "email")
        changes = await SqlSignalRepository(session).state_changes_since(tenant, "email", start)
        await rollups.replace_availability_minutes(tenant, "email", start, availability_minutes(changes, [], start, AT))
        passing = asyncio.create_task(second.evaluate_all([tenant]))
        await until_someone_waits_for_a_lock(sessions, passing)

    assert await asyncio.wait_for(passing, WAIT_LIMIT_SECONDS) == 1
    assert failures() == before
    # The second pass ran on what the first committed and extended it to its own now (12:05): down from 11:30.
    minutes = await stored_minutes(sessions, tenant)
    assert max(minutes) == minute_of(AT + timedelta(minutes=4))
    assert sum(minutes.values()) == 35 * 60


async def test_every_replica_passing_at_once_over_and_over_never_collides(
    sessions: async_sessionmaker[AsyncSession], other_replica: async_sessionmaker[AsyncSession]
) -> None:
    tenant = f"two-{uuid.uuid4().hex[:8]}"
    async with sessions() as session, session.begin():
        await SqlBundleRepository(session).add_config(tenant, dump_bundle(parse_bundle(BUNDLE)), BUNDLE)
    clock = Clock(AT)
    replicas = [
        SloKeeper(engine_units(sessions), BundleCache(), clock, status_interval_seconds=0),
        SloKeeper(engine_units(other_replica), BundleCache(), clock, status_interval_seconds=0),
    ]
    start = datetime(2026, 11, 10, 11, tzinfo=UTC)
    await replicas[0].on_signal_records([availability(tenant, "2026-11-10T11:00:00", "down")])
    before = failures()
    for step in range(1, 11):
        clock.at = AT + timedelta(minutes=step)
        # Both replicas' passes and a signal batch (half a minute ago), all rewriting the minutes at once.
        flip = availability(
            tenant, (clock.at - timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%S"), "up" if step % 2 else "down"
        )
        evaluated = await asyncio.gather(
            replicas[0].evaluate_all([tenant]),
            replicas[1].evaluate_all([tenant]),
            replicas[1].on_signal_records([flip]),
        )
        assert list(evaluated[:2]) == [1, 1]
    assert failures() == before
    # What one writer alone computes from every state change stored.
    async with sessions() as session:
        changes = await SqlSignalRepository(session).state_changes_since(tenant, "email", start)
    expected = {row.minute: row.down for row in availability_minutes(changes, [], start, clock.at)}
    assert await stored_minutes(sessions, tenant) == expected
    assert len(expected) == 70  # 11:00 to 12:09
