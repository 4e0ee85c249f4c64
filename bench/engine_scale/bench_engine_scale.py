"""The sla-engine under a realistic workload (bench/engine_scale/workload.py), as a real process on the stack.

One run prints:
- engine events/s per bundle size (1, 10, 100, 1000 policies) and the ratio to the 1-policy case: ticket
  events produced onto itsm.tickets.v1 (every ticket's first event, then every ticket's second, ... as
  tickets that live at the same time arrive), timed until every ticket is reconciled since its last event;
- then a backlog of 20,000 events of one tenant: p50/p99 of `GET /v1/tickets/{id}/clocks` (known and unknown
  tickets) while it drains, asked of the engine and, side by side, of a process of role `api` (HTTP only,
  as a deployment beside the consuming one would run it), and the time until a second tenant's 100 tickets,
  sent right after the backlog, all have clocks;
- the engine's own count of consumer rebalances and refused commits during the run;
- per bundle size, the CPU time of the engine's processes (the service and its evaluation worker) and events
  per CPU second: on a shared machine events/s is the share of the cores the engine got, CPU time is what the
  code costs; and how many times the engine parsed a bundle (once per configuration version).

Run: `make bench` or `uv run python -m bench.engine_scale.bench_engine_scale [--sizes 1,10,100,1000]
[--backlog-events 20000] [--backlog-policies 10]` with the stack's environment (`. .stack/env`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.engine_scale.workload import Ticket, bundle_yaml, make_tickets
from scripts.localstack import Stack, discover
from scripts.processes import ServiceProcess
from sla_engine import tables
from sla_engine.bundles.cache import BundleCache
from sla_engine.bundles.lifecycle import ConfigService
from sla_engine.clocks.handlers import ClockKeeper
from sla_engine.unit_of_work import engine_units
from slm_shared import topics
from slm_shared.auth import issue_key, store_key
from slm_shared.db import create_engine, session_factory
from slm_shared.events import ApiKeyData

# Tickets per bundle size: the same for every size (a ticket costs about the same whatever the bundle), and
# enough that the one parse of the bundle (seconds for a thousand policies) is not the figure.
DEFAULT_TICKETS = {1: 1500, 10: 1500, 100: 1500, 1000: 1500}
SECOND_TENANT_TICKETS = 100


@dataclass(frozen=True)
class SizeRate:
    policies: int
    events: int
    seconds: float
    cpu_seconds: float  # the engine's processes' CPU time meanwhile (user + system)

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def rate_per_cpu(self) -> float:
        """Events per CPU second of the engine: what the code costs, whatever share of the machine it got."""
        return self.events / self.cpu_seconds if self.cpu_seconds else float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process and its descendants (the evaluation worker), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks
    family, added = {pid}, True
    while added:
        grown = family | {child for child, parent in parents.items() if parent in family}
        added, family = grown != family, grown
    return sum(times.get(member, 0.0) for member in family)


async def produce(bootstrap: str, tenant: str, tickets: list[Ticket]) -> int:
    """Every ticket's first event, then every ticket's second, ...; returns how many were sent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    sent = 0
    try:
        for step in range(max(len(ticket.events) for ticket in tickets)):
            for ticket in tickets:
                if step < len(ticket.events):
                    await producer.send(
                        topics.TICKETS,
                        json.dumps(ticket.events[step]).encode(),
                        key=topics.ticket_key(tenant, ticket.ticket_id).encode(),
                    )
                    sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def caught_up(sessions: async_sessionmaker[AsyncSession], tenant: str) -> int:
    """The tenant's tickets reconciled since their last snapshot: pinned to a version and not waiting as due."""
    v, t = tables.ticket_versions, tables.timers
    waiting = sa.select(t.c.ticket_id).where(t.c.tenant_id == tenant, t.c.transition == "events")
    async with sessions() as session:
        count = await session.scalar(
            sa.select(sa.func.count()).select_from(v).where(v.c.tenant_id == tenant, v.c.ticket_id.not_in(waiting))
        )
    return int(count or 0)


async def with_clocks(sessions: async_sessionmaker[AsyncSession], tenant: str) -> int:
    c = tables.clocks
    async with sessions() as session:
        count = await session.scalar(
            sa.select(sa.func.count(sa.distinct(c.c.ticket_id))).where(c.c.tenant_id == tenant)
        )
    return int(count or 0)


async def until(sessions: async_sessionmaker[AsyncSession], tenant: str, tickets: int, *, clocks: bool = False) -> None:
    """Until `tickets` of the tenant's tickets are caught up (or, with `clocks`, have clocks)."""
    count = with_clocks if clocks else caught_up
    while True:
        if await count(sessions, tenant) >= tickets:
            return
        await asyncio.sleep(0.1)


async def stored_events(sessions: async_sessionmaker[AsyncSession], tenant: str) -> int:
    e = tables.ticket_events
    async with sessions() as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(e).where(e.c.tenant_id == tenant)) or 0)


async def until_stored(sessions: async_sessionmaker[AsyncSession], tenant: str, events: int) -> None:
    while True:
        if await stored_events(sessions, tenant) >= events:
            return
        await asyncio.sleep(0.1)


async def new_tenant(sessions: async_sessionmaker[AsyncSession], policies: int, label: str) -> str:
    tenant = f"scale-{label}-{uuid.uuid4().hex[:6]}"
    bundles = BundleCache()
    config = ConfigService(engine_units(sessions), bundles, ClockKeeper(engine_units(sessions), bundles))
    await config.apply(tenant, bundle_yaml(policies), "yaml", "none", datetime.now(UTC))
    return tenant


async def api_key(sessions: async_sessionmaker[AsyncSession], tenant: str) -> str:
    """A key stored straight into the engine's copy (intake would announce it the same way)."""
    issued = issue_key(tenant)
    async with sessions() as session, session.begin():
        await store_key(
            session,
            tables.api_keys,
            ApiKeyData(key_id=issued.key_id, tenant_id=tenant, key_hash=issued.key_hash, status="active"),
            datetime.now(UTC),
        )
    return issued.plaintext


async def size_rate(
    stack: Stack, sessions: async_sessionmaker[AsyncSession], engine: ServiceProcess, policies: int, tickets: int
) -> SizeRate:
    tenant = await new_tenant(sessions, policies, f"p{policies}")
    workload = make_tickets(tickets, policies=policies, tenant_id=tenant, seed=policies)
    assert engine.process is not None
    cpu = cpu_seconds(engine.process.pid)
    started = time.perf_counter()
    events = await produce(stack.kafka_bootstrap, tenant, workload)
    await until(sessions, tenant, tickets)
    took = time.perf_counter() - started
    return SizeRate(policies, events, took, cpu_seconds(engine.process.pid) - cpu)


@dataclass(frozen=True)
class Backlog:
    events: int
    drained_seconds: float
    latencies: list[float]
    unknown_latencies: list[float]
    api_latencies: list[float]  # the same requests to a process of role `api` beside the engine
    second_tenant_seconds: float
    second_tenant_stored_seconds: float  # until the consumer had stored all its events (they queue behind the backlog)


async def backlog_drain(
    stack: Stack,
    sessions: async_sessionmaker[AsyncSession],
    engine: ServiceProcess,
    api: ServiceProcess,
    events: int,
    policies: int,
) -> Backlog:
    first = await new_tenant(sessions, policies, "backlog")
    second = await new_tenant(sessions, policies, "second")
    key = await api_key(sessions, first)
    tickets = make_tickets(max(1, events * 2 // 16), policies=policies, tenant_id=first, seed=7)
    seconds = make_tickets(SECOND_TENANT_TICKETS, policies=policies, tenant_id=second, seed=8)
    latencies: list[float] = []
    unknown: list[float] = []
    api_latencies: list[float] = []

    async def ask_clocks(
        stop: asyncio.Event, url: str, known_latencies: list[float], unknown_latencies: list[float], seed: int
    ) -> None:
        rng = random.Random(seed)
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            while not stop.is_set():
                known = rng.random() < 0.8
                ticket = rng.choice(tickets).ticket_id if known else f"NOPE-{rng.randrange(10**9)}"
                started = time.perf_counter()
                answer = await client.get(f"/v1/tickets/{ticket}/clocks")
                (known_latencies if known else unknown_latencies).append(time.perf_counter() - started)
                assert answer.status_code in (200, 404), answer.text
                await asyncio.sleep(0.05)

    started = time.perf_counter()
    sent = await produce(stack.kafka_bootstrap, first, tickets)
    stop = asyncio.Event()
    asking = asyncio.gather(
        ask_clocks(stop, engine.url, latencies, unknown, 3), ask_clocks(stop, api.url, api_latencies, [], 4)
    )
    second_started = time.perf_counter()
    second_events = await produce(stack.kafka_bootstrap, second, seconds)
    await until_stored(sessions, second, second_events)  # its records queue behind the backlog's on the partitions
    second_stored = time.perf_counter() - second_started
    await until(sessions, second, SECOND_TENANT_TICKETS, clocks=True)
    second_took = time.perf_counter() - second_started
    await until(sessions, first, len(tickets))
    drained = time.perf_counter() - started
    stop.set()
    await asking
    return Backlog(sent, drained, latencies, unknown, api_latencies, second_took, second_stored)


def counter(engine: ServiceProcess, name: str, group: str | None = "sla-engine") -> float:
    prefix = f'{name}{{group="{group}"}}' if group is not None else f"{name} "
    for line in httpx.get(f"{engine.url}/metrics", timeout=30).text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(stack: Stack, sizes: list[int], backlog_events: int, backlog_policies: int) -> None:
    database = create_engine(stack.database_urls["sla-engine"], pool_size=2)
    sessions = session_factory(database)
    engine = await asyncio.to_thread(ServiceProcess("sla-engine", stack, name="bench-scale-sla-engine").start)
    api = await asyncio.to_thread(
        ServiceProcess("sla-engine", stack, name="bench-scale-sla-engine-api", role="api").start
    )
    try:
        rebalances = await asyncio.to_thread(counter, engine, "slm_consumer_rebalances_total")
        failures = await asyncio.to_thread(counter, engine, "slm_consumer_commit_failures_total")
        parses = await asyncio.to_thread(counter, engine, "slm_bundle_parses_total", None)
        rates = []
        print(
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a shared machine: events/s is the"
            " share the engine got; events per CPU s is what the code costs)",
            flush=True,
        )
        print(
            "policies   events   seconds   events/s   ratio to 1 policy   engine CPU s   events per CPU s", flush=True
        )
        for size in sizes:  # each line as soon as it is measured: a long run still leaves figures if cut short
            rates.append(await size_rate(stack, sessions, engine, size, DEFAULT_TICKETS.get(size, 100)))
            one = next((r.rate for r in rates if r.policies == 1), rates[0].rate)
            r = rates[-1]
            print(
                f"{r.policies:>8} {r.events:>8} {r.seconds:>9.1f} {r.rate:>10.0f}   {r.rate / one:17.3f}"
                f"   {r.cpu_seconds:12.1f}   {r.rate_per_cpu:16.0f}",
                flush=True,
            )
        backlog = await backlog_drain(stack, sessions, engine, api, backlog_events, backlog_policies)
        rebalances = await asyncio.to_thread(counter, engine, "slm_consumer_rebalances_total") - rebalances
        failures = await asyncio.to_thread(counter, engine, "slm_consumer_commit_failures_total") - failures
        parses = await asyncio.to_thread(counter, engine, "slm_bundle_parses_total", None) - parses
    finally:
        await asyncio.to_thread(engine.stop)
        await asyncio.to_thread(api.stop)
        await database.dispose()
    print(
        f"backlog                       {backlog.events} events, {backlog_policies} policies, drained in "
        f"{backlog.drained_seconds:.1f} s ({backlog.events / backlog.drained_seconds:.0f} events/s)"
    )
    print(
        f"clocks API while draining     p50 {percentile(backlog.latencies, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(backlog.latencies, 0.99) * 1000:.0f} ms, max {max(backlog.latencies, default=0) * 1000:.0f}"
        f" ms ({len(backlog.latencies)} requests; target p99 <= 250 ms)"
    )
    print(
        f"  the same, role api process  p50 {percentile(backlog.api_latencies, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(backlog.api_latencies, 0.99) * 1000:.0f} ms ({len(backlog.api_latencies)} requests to a "
        "process serving HTTP only, beside the engine)"
    )
    print(
        f"unknown ticket (404)          p50 {percentile(backlog.unknown_latencies, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(backlog.unknown_latencies, 0.99) * 1000:.0f} ms ({len(backlog.unknown_latencies)})"
    )
    print(
        f"second tenant's {SECOND_TENANT_TICKETS} tickets     all with clocks {backlog.second_tenant_seconds:.1f} s"
        f" after they were sent (target <= 5 s); its events all consumed after "
        f"{backlog.second_tenant_stored_seconds:.1f} s"
    )
    print(f"rebalances during the run     {rebalances:.0f}  (refused commits {failures:.0f}; target 0)")
    print(f"bundle parses in the engine   {parses:.0f} for {len(sizes) + 2} configuration versions (one each)")
    if backlog.latencies:
        print(f"clocks API mean               {statistics.fmean(backlog.latencies) * 1000:.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1,10,100,1000", help="bundle sizes (policies), comma-separated")
    parser.add_argument("--backlog-events", type=int, default=20_000)
    parser.add_argument("--backlog-policies", type=int, default=10)
    arguments = parser.parse_args()
    stack = discover()
    if stack is None:
        print("no stack found: run `make up` first")
        return 1
    sizes = [int(size) for size in arguments.sizes.split(",") if size]
    asyncio.run(run(stack, sizes, arguments.backlog_events, arguments.backlog_policies))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
