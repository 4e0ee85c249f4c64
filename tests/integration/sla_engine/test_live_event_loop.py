"""A flood of ticket events on an expensive bundle, into the sla-engine as a real process (issue 11, 2 and 3).

The consumer only stores snapshots and marks tickets due; the reconcile loop evaluates them in time-budgeted
rounds, sharing evaluation time fairly across tenants. So while the flood drains, the consumer keeps its
place in the group (no rebalance, no refused commit, counted by the service's own metrics), and a second
tenant's tickets get their clocks before the first tenant's backlog is gone. No timing is asserted: the
ordering (the other tenant caught up while the backlog was still there) and the counters are.

The other tenant is sent once the consumer has stored the whole flood, so what is compared is the reconcile
loop's sharing, not how fast the consumer reached the other tenant's records behind the flood's (that race
made the test depend on the machine).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa
import yaml
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.engine_scale.workload import Ticket, bundle_yaml, make_tickets
from scripts.localstack import Stack
from scripts.processes import ServiceProcess
from sla_engine import tables
from sla_engine.bundles.cache import BundleCache
from sla_engine.bundles.lifecycle import ConfigService
from sla_engine.clocks.handlers import ClockKeeper
from sla_engine.unit_of_work import engine_units
from slm_shared import topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

EXPENSIVE_POLICIES = 400  # every ticket matches all of them: a few tenths of a second per ticket
FLOOD_TICKETS = 100  # about a minute and a half of evaluation on an idle machine
OTHER_TICKETS = 20


def bundle_matching_everything(policies: int) -> str:
    """The workload's bundle with every policy matching every ticket, so the policy index cannot spare any:
    each flood ticket really evaluates all of them."""
    document = yaml.safe_load(bundle_yaml(policies))
    for policy in document["policies"]:
        policy["match"] = {"kind": ["incident", "service_request", "problem", "change"]}
    return yaml.safe_dump(document, sort_keys=False)


def counter(engine: ServiceProcess, name: str, group: str) -> float:
    """A counter of the engine's own /metrics."""
    prefix = f'{name}{{group="{group}"}}'
    for line in httpx.get(f"{engine.url}/metrics", timeout=30).text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    raise AssertionError(f"{prefix} not in the engine's metrics")


async def produce(bootstrap: str, tenant: str, tickets: list[Ticket]) -> None:
    """Every ticket's first event, then every ticket's second, ...: a batch touches many tickets, as in life."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for step in range(max(len(ticket.events) for ticket in tickets)):
            for ticket in tickets:
                if step < len(ticket.events):
                    await producer.send(
                        topics.TICKETS,
                        json.dumps(ticket.events[step]).encode(),
                        key=topics.ticket_key(tenant, ticket.ticket_id).encode(),
                    )
        await producer.flush()
    finally:
        await producer.stop()


async def caught_up(sessions: async_sessionmaker[AsyncSession], tenant: str) -> int:
    """The tenant's tickets reconciled since their last snapshot: pinned to a version and not waiting as due."""
    v, t = tables.ticket_versions, tables.timers
    waiting = sa.select(t.c.ticket_id).where(t.c.tenant_id == tenant, t.c.transition == "events")
    async with sessions() as session:
        count = await session.scalar(
            sa.select(sa.func.count()).select_from(v).where(v.c.tenant_id == tenant, v.c.ticket_id.not_in(waiting))
        )
    return int(count or 0)


async def stored_events(sessions: async_sessionmaker[AsyncSession], tenant: str) -> int:
    e = tables.ticket_events
    async with sessions() as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(e).where(e.c.tenant_id == tenant)) or 0)


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(600):
        while True:
            if await condition():
                return
            await asyncio.sleep(0.2)


async def until_caught_up(sessions: async_sessionmaker[AsyncSession], tenant: str, tickets: int) -> None:
    async def done() -> bool:
        return await caught_up(sessions, tenant) >= tickets

    await until(done)


async def test_a_flood_on_an_expensive_bundle_keeps_the_consumer_in_its_group_and_another_tenant_unblocked(
    stack: Stack,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    flooding, other = f"flood-{uuid.uuid4().hex[:8]}", f"other-{uuid.uuid4().hex[:8]}"
    bundles = BundleCache()
    config = ConfigService(engine_units(sessions), bundles, ClockKeeper(engine_units(sessions), bundles))
    await config.apply(flooding, bundle_matching_everything(EXPENSIVE_POLICIES), "yaml", "none", datetime.now(UTC))
    await config.apply(other, bundle_yaml(3), "yaml", "none", datetime.now(UTC))
    flood = make_tickets(FLOOD_TICKETS, policies=EXPENSIVE_POLICIES, tenant_id=flooding, seed=11)
    others = make_tickets(OTHER_TICKETS, policies=3, tenant_id=other, seed=12)

    engine = await asyncio.to_thread(ServiceProcess("sla-engine", stack, name="flood-sla-engine").start)
    try:
        group = "sla-engine"
        rebalances_before = await asyncio.to_thread(counter, engine, "slm_consumer_rebalances_total", group)
        failures_before = await asyncio.to_thread(counter, engine, "slm_consumer_commit_failures_total", group)

        await produce(stack.kafka_bootstrap, flooding, flood)
        flood_events = sum(len(ticket.events) for ticket in flood)

        async def flood_stored() -> bool:
            return await stored_events(sessions, flooding) >= flood_events

        await until(flood_stored)
        flood_done_when_other_sent = await caught_up(sessions, flooding)
        await produce(stack.kafka_bootstrap, other, others)

        await until_caught_up(sessions, other, OTHER_TICKETS)
        flood_done_when_other_was = await caught_up(sessions, flooding)
        await until_caught_up(sessions, flooding, FLOOD_TICKETS)

        rebalances = await asyncio.to_thread(counter, engine, "slm_consumer_rebalances_total", group)
        failures = await asyncio.to_thread(counter, engine, "slm_consumer_commit_failures_total", group)
    finally:
        await asyncio.to_thread(engine.stop)

    # The consumer stored the flood long before the loop evaluated it: the backlog was there when the other
    # tenant was sent, and its tickets were all reconciled while the flood's backlog still was.
    assert flood_done_when_other_sent < FLOOD_TICKETS // 2, flood_done_when_other_sent
    assert flood_done_when_other_was < FLOOD_TICKETS, (flood_done_when_other_sent, flood_done_when_other_was)
    assert rebalances - rebalances_before == 0
    assert failures - failures_before == 0
    async with sessions() as session:
        clocks = await session.scalar(
            sa.select(sa.func.count(sa.distinct(tables.clocks.c.ticket_id))).where(tables.clocks.c.tenant_id == other)
        )
    assert clocks == OTHER_TICKETS
