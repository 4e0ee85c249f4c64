"""Events/s through intake -> sla-engine -> reporting, next to a raw aiokafka consume->produce relay.

Both run on the same broker in the same run. The pipeline figure counts ticket events from the first POST to
intake until reporting has committed every resulting clock event to its read model (its own /metrics
count, polled cheaply; the report is checked once at the end); the baseline counts from the first
produce until the relay's output topic holds every record; the sla-engine alone counts from producing
ticket events onto its input topic until each new ticket's `started` is on its output topic. Run:
`make bench` or `uv run python -m bench.pipeline.bench_pipeline [events] [--realistic]` with the stack's
environment; `--realistic` uses bench/engine_scale's workload (business calendars, 6-10 events per ticket)
and counts until the engine has caught up with every ticket and reporting has applied every clock event.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.engine_scale.bench_engine_scale import caught_up, produce, until
from bench.engine_scale.workload import Ticket, bundle_yaml, make_tickets, with_tenant
from scripts.localstack import Stack, discover
from scripts.processes import LocalPlatform, ServiceProcess
from slm_shared.db import create_engine, session_factory

BUNDLE = """
calendars: []
policies:
  - id: gold-incidents
    name: Gold incidents
    agreement: SLA
    match: {kind: incident}
    metrics:
      - metric: response
        calendar: 24x7
        targets: {P1: 15m, P2: 1h, P3: 4h, P4: 1d}
        stop: {actions: [agent_replied], statuses: [resolved, closed]}
"""


def ticket_events(tenant: str, count: int, prefix: str = "B") -> list[dict[str, object]]:
    # Created in the last ten minutes with targets of an hour or more: each ticket yields exactly one clock
    # event (`started`) during the run, so counting clock events counts tickets.
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    return [
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "bench://pipeline",
            "type": "itsm.ticket.v1",
            "time": (base + timedelta(seconds=n % 600)).isoformat(),
            "tenantid": tenant,
            "subject": f"{prefix}-{n}",
            "data": {
                "ticket_id": f"{prefix}-{n}",
                "action": "created",
                "kind": "incident",
                "service": "email",
                "customer": "acme",
                "priority": f"P{2 + n % 3}",
                "status": "new",
            },
        }
        for n in range(count)
    ]


async def raw_relay_baseline(bootstrap: str, events: list[dict[str, object]]) -> float:
    """Produce to A; a consumer relays A -> B record by record; time until B holds them all."""
    source, target = f"bench.a.{uuid.uuid4().hex[:6]}", f"bench.b.{uuid.uuid4().hex[:6]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(source, 6, 1), NewTopic(target, 6, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=2)
    relay_in = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"relay-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    sink = AIOKafkaConsumer(
        target, bootstrap_servers=bootstrap, group_id=f"sink-{uuid.uuid4()}", auto_offset_reset="earliest"
    )
    await producer.start()
    await relay_in.start()
    await sink.start()

    async def relay() -> None:
        relayed = 0
        while relayed < len(events):
            batches = await relay_in.getmany(timeout_ms=200, max_records=500)
            for records in batches.values():
                for record in records:
                    await producer.send(target, record.value, key=record.key)
                    relayed += 1
            await producer.flush()
            await relay_in.commit()

    started = time.perf_counter()
    relaying = asyncio.create_task(relay())
    for event in events:
        await producer.send(source, json.dumps(event).encode(), key=str(event["subject"]).encode())
    await producer.flush()
    seen = 0
    while seen < len(events):
        batches = await sink.getmany(timeout_ms=200, max_records=5000)
        seen += sum(len(records) for records in batches.values())
    elapsed = time.perf_counter() - started
    await relaying
    for client in (relay_in, sink, producer):
        await client.stop()
    return elapsed


async def engine_only(bootstrap: str, events: list[dict[str, object]]) -> float:
    """Ticket events produced straight onto itsm.tickets.v1; time until every `started` is on sla.clocks.v1."""
    tenant = str(events[0]["tenantid"])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    sink = AIOKafkaConsumer(
        "sla.clocks.v1", bootstrap_servers=bootstrap, group_id=f"sink-{uuid.uuid4()}", auto_offset_reset="latest"
    )
    await producer.start()
    await sink.start()
    await asyncio.sleep(1)  # let the sink's partitions be assigned before the first record
    started = time.perf_counter()
    for event in events:
        await producer.send("itsm.tickets.v1", json.dumps(event).encode(), key=f"{tenant}/{event['subject']}".encode())
    await producer.flush()
    seen = 0
    while seen < len(events):
        batches = await sink.getmany(timeout_ms=200, max_records=5000)
        seen += sum(1 for records in batches.values() for r in records if json.loads(r.value)["tenantid"] == tenant)
    elapsed = time.perf_counter() - started
    await producer.stop()
    await sink.stop()
    return elapsed


def clock_events_applied(client: httpx.Client, reporting: ServiceProcess) -> int:
    """Reporting's own count of clock events committed to its read model (its /metrics), a cheap poll."""
    metrics = client.get(f"{reporting.url}/metrics").text
    prefix = 'slm_events_consumed_total{outcome="applied",topic="sla.clocks.v1"}'
    return sum(int(float(line.split()[-1])) for line in metrics.splitlines() if line.startswith(prefix))


def pipeline(
    events: list[dict[str, object]], intake: ServiceProcess, reporting: ServiceProcess, headers: dict[str, str]
) -> float:
    with httpx.Client(headers=headers, timeout=60) as client:
        before = clock_events_applied(client, reporting)
        started = time.perf_counter()
        for start in range(0, len(events), 500):
            answer = client.post(
                f"{intake.url}/v1/events",
                content=json.dumps(events[start : start + 500]),
                headers={"Content-Type": "application/cloudevents-batch+json"},
            )
            answer.raise_for_status()
        # Each ticket yields one `started` clock event. The cheap count (all tenants) says when it may be done;
        # the tenant's report, asked only then, says that it is.
        while True:
            if clock_events_applied(client, reporting) - before >= len(events):
                report = client.get(
                    f"{reporting.url}/v1/reports/slr", params={"format": "json", "clocks_limit": len(events)}
                ).json()
                if len(report["clocks"]) >= len(events):
                    return time.perf_counter() - started
            time.sleep(0.1)


def engine_clock_events(stack_url: str, tenant: str) -> int:
    """How many clock events the engine has written to its outbox for the tenant (what reporting must apply)."""

    async def count() -> int:
        database = create_engine(stack_url, pool_size=1)
        try:
            async with session_factory(database)() as session:
                return int(
                    await session.scalar(
                        sa.text("SELECT count(*) FROM outbox WHERE topic = :topic AND key LIKE :tenant"),
                        {"topic": "sla.clocks.v1", "tenant": f"{tenant}/%"},
                    )
                    or 0
                )
        finally:
            await database.dispose()

    return asyncio.run(count())


def realistic_pipeline(
    stack: Stack,
    events: list[dict[str, object]],
    tickets: int,
    intake: ServiceProcess,
    reporting: ServiceProcess,
    headers: dict[str, str],
) -> float:
    """The realistic workload through intake: until the engine has caught up with every ticket and reporting
    has applied every clock event the engine wrote for the tenant."""
    tenant = str(events[0]["tenantid"])
    engine_url = stack.database_urls["sla-engine"]
    with httpx.Client(headers=headers, timeout=60) as client:
        before = clock_events_applied(client, reporting)
        started = time.perf_counter()
        for start in range(0, len(events), 500):
            answer = client.post(
                f"{intake.url}/v1/events",
                content=json.dumps(events[start : start + 500]),
                headers={"Content-Type": "application/cloudevents-batch+json"},
            )
            answer.raise_for_status()

        async def engine_caught_up() -> None:
            database = create_engine(engine_url, pool_size=1)
            try:
                await until(session_factory(database), tenant, tickets)
            finally:
                await database.dispose()

        asyncio.run(engine_caught_up())
        expected = engine_clock_events(engine_url, tenant)
        while clock_events_applied(client, reporting) - before < expected:
            time.sleep(0.1)
            expected = engine_clock_events(engine_url, tenant)  # the relay may still be writing the last ones
        return time.perf_counter() - started


async def realistic_engine_only(stack: Stack, tenant: str, tickets: list[Ticket]) -> tuple[int, float]:
    """The realistic workload produced onto itsm.tickets.v1; until the engine has caught up with every ticket."""
    database = create_engine(stack.database_urls["sla-engine"], pool_size=1)
    try:
        sessions = session_factory(database)
        already = await caught_up(sessions, tenant)  # the pipeline run's tickets, same tenant
        started = time.perf_counter()
        sent = await produce(stack.kafka_bootstrap, tenant, tickets)
        await until(sessions, tenant, already + len(tickets))
        return sent, time.perf_counter() - started
    finally:
        await database.dispose()


def realistic(stack: Stack, count: int) -> int:
    """`--realistic`: bench/engine_scale's workload (10-policy bundle with business calendars, tickets of 6-10
    events with pauses, priority changes, reopens and late arrivals) through the pipeline, the engine alone,
    and the raw relay on the same broker."""
    platform = LocalPlatform.start(stack, prefix="bench-")
    try:
        intake, engine, reporting = platform.processes
        tenant = f"bench-{uuid.uuid4().hex[:6]}"
        key = platform.new_tenant(tenant)
        headers = {"Authorization": f"Bearer {key}"}
        httpx.post(
            f"{engine.url}/v1/config:apply",
            content=bundle_yaml(10),
            timeout=60,
            headers={**headers, "Content-Type": "application/yaml"},
        ).raise_for_status()
        tickets = make_tickets(max(1, count // 8), policies=10, tenant_id=tenant, seed=21)
        events = [event for ticket in tickets for event in ticket.events]
        through_pipeline = realistic_pipeline(stack, events, len(tickets), intake, reporting, headers)
        engine_tickets = [
            with_tenant(ticket, tenant)
            for ticket in make_tickets(max(1, count // 8), policies=10, tenant_id=tenant, seed=22)
        ]
        engine_tickets = [
            Ticket(
                f"E{t.ticket_id}",
                t.snapshots,
                tuple(
                    {
                        **e,
                        "id": f"E{e['id']}",
                        "subject": f"E{t.ticket_id}",
                        "data": {**e["data"], "ticket_id": f"E{t.ticket_id}"},
                    }
                    for e in t.events
                ),
            )
            for t in engine_tickets
        ]
        engine_events, through_engine = asyncio.run(realistic_engine_only(stack, tenant, engine_tickets))
    finally:
        platform.stop()
    baseline_events = [
        event for ticket in make_tickets(max(count, 50_000) // 8, policies=10, seed=23) for event in ticket.events
    ]
    baseline = asyncio.run(raw_relay_baseline(stack.kafka_bootstrap, baseline_events))
    pipeline_rate, engine_rate = len(events) / through_pipeline, engine_events / through_engine
    baseline_rate = len(baseline_events) / baseline
    print(f"realistic workload: {len(events)} events of {len(tickets)} tickets, bundle of 10 policies")
    print(f"pipeline intake->engine->report {pipeline_rate:10.0f} events/s ({through_pipeline:.1f} s)")
    print(f"sla-engine alone (topic->caught up) {engine_rate:6.0f} events/s ({through_engine:.1f} s)")
    print(
        f"raw aiokafka relay baseline     {baseline_rate:10.0f} events/s ({len(baseline_events)} in {baseline:.1f} s)"
    )
    print(f"ratio pipeline / baseline       {pipeline_rate / baseline_rate:10.3f}   (target >= 0.25)")
    print(f"ratio sla-engine / baseline     {engine_rate / baseline_rate:10.3f}")
    return 0


def main() -> int:
    arguments = [argument for argument in sys.argv[1:] if argument != "--realistic"]
    count = int(arguments[0]) if arguments else 5000
    stack = discover()
    if stack is not None and "--realistic" in sys.argv[1:]:
        return realistic(stack, count)
    if stack is None:
        print("no stack found: run `make up` first", file=sys.stderr)
        return 1
    platform = LocalPlatform.start(stack, prefix="bench-")
    try:
        intake, engine, reporting = platform.processes
        tenant = f"bench-{uuid.uuid4().hex[:6]}"
        key = platform.new_tenant(tenant)
        headers = {"Authorization": f"Bearer {key}"}
        httpx.post(
            f"{engine.url}/v1/config:apply",
            content=BUNDLE,
            timeout=30,
            headers={**headers, "Content-Type": "application/yaml"},
        ).raise_for_status()
        events = ticket_events(tenant, count)
        through_pipeline = pipeline(events, intake, reporting, headers)
        through_engine = asyncio.run(engine_only(stack.kafka_bootstrap, ticket_events(tenant, count, "E")))
    finally:
        platform.stop()
    # The raw relay finishes a few thousand records in well under a second; a longer run steadies its rate.
    baseline_count = max(count, 50_000)
    baseline = asyncio.run(raw_relay_baseline(stack.kafka_bootstrap, ticket_events("baseline", baseline_count)))
    pipeline_rate, baseline_rate = count / through_pipeline, baseline_count / baseline
    print(f"events                         {count}")
    print(f"pipeline intake->engine->report {pipeline_rate:10.0f} events/s ({through_pipeline:.1f} s)")
    engine_rate = count / through_engine
    print(f"sla-engine alone (topic->topic) {engine_rate:10.0f} events/s ({through_engine:.1f} s)")
    print(f"raw aiokafka relay baseline     {baseline_rate:10.0f} events/s ({baseline_count} in {baseline:.1f} s)")
    print(f"ratio pipeline / baseline       {pipeline_rate / baseline_rate:10.3f}")
    print(f"ratio sla-engine / baseline     {engine_rate / baseline_rate:10.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
