"""Intake's accepted events/s over HTTP batches and over the Kafka path, next to a raw aiokafka relay.

All three run in one process run on the same broker:
- HTTP: batches of `--batch` events POSTed by `--concurrency` clients to a real `slm-intake serve` process;
  events/s from the first request until the last answer (every event must be `accepted`).
- Kafka: the same events produced to intake's ingest topic; events/s from the first produce until intake's
  dedup ledger holds all of them (accepted = committed with its outbox row), and until the outbox relay
  has published them all (delivered).
- Output goes to `bench.<run>.itsm.tickets.v1`, so the bench leaves the shared topics alone.
- Baseline: a raw aiokafka consume -> produce relay (no validation, no database) over an ingest-like topic,
  from the first produce until the relay has forwarded every record (acks awaited).

Run: `make bench`, or `uv run python bench/intake/bench_intake.py [--events N]` with the stack's environment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# `python bench/intake/bench_intake.py` puts only this folder on sys.path; the repo root holds `scripts`.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from scripts.localstack import Stack, discover
from scripts.processes import ServiceProcess, create_api_key
from slm_shared.outbox import asyncpg_dsn

BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"


def events(tenant: str, count: int, prefix: str) -> list[dict[str, Any]]:
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    return [
        {
            "specversion": "1.0",
            "id": f"{prefix}-{n}",
            "source": "bench://desk",
            "type": "itsm.ticket.v1",
            "time": (base + timedelta(milliseconds=n)).isoformat(),
            "tenantid": tenant,
            "subject": f"B-{n % 5000}",
            "data": {
                "ticket_id": f"B-{n % 5000}",
                "action": "updated",
                "kind": "incident",
                "service": "email",
                "customer": "acme",
                "priority": "P2",
                "status": "open",
                "assignment_group": "service-desk",
                "title": "Benchmark ticket",
                "attributes": {"channel": "bench", "n": n},
            },
        }
        for n in range(count)
    ]


async def create_topics(bootstrap: str, *names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=6, replication_factor=1) for name in names])
    finally:
        await admin.close()


async def bench_http(url: str, key: str, payload: list[dict[str, Any]], batch: int, concurrency: int) -> float:
    bodies = [json.dumps(payload[i : i + batch]).encode() for i in range(0, len(payload), batch)]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    accepted = 0
    headers = {"Authorization": f"Bearer {key}", "Content-Type": BATCH_CONTENT_TYPE}

    async def client() -> None:
        nonlocal accepted
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as http:
            while not queue.empty():
                answer = await http.post("/v1/events", content=queue.get_nowait())
                answer.raise_for_status()
                accepted += answer.json()["accepted"]

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    if accepted != len(payload):
        raise SystemExit(f"HTTP: {accepted} of {len(payload)} accepted")
    return elapsed


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=str(n % 5000).encode()) for n, value in enumerate(values)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def wait_for(check: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        await asyncio.sleep(0.05)


async def bench_kafka_path(
    stack: Stack, ingest: str, tenant: str, payload: list[dict[str, Any]]
) -> tuple[float, float]:
    connection = await asyncpg.connect(asyncpg_dsn(stack.database_urls["intake"]))
    total = len(payload)

    async def all_accepted() -> bool:
        count = await connection.fetchval(
            "SELECT count(*) FROM received_events WHERE tenant_id = $1 AND channel = 'kafka'", tenant
        )
        return bool(count >= total)

    async def all_delivered() -> bool:
        pending = await connection.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL AND key LIKE $1", f"{tenant}/%"
        )
        return bool(pending == 0)

    try:
        started = time.perf_counter()
        await produce(stack.kafka_bootstrap, ingest, [json.dumps(e).encode() for e in payload])
        await wait_for(all_accepted, 120)
        accepted = time.perf_counter() - started
        await wait_for(all_delivered, 120)
        delivered = time.perf_counter() - started
    finally:
        await connection.close()
    return accepted, delivered


async def bench_raw_relay(bootstrap: str, payload: list[dict[str, Any]]) -> float:
    """The baseline: consume -> produce with aiokafka alone, offsets committed after the acks."""
    source, target = f"bench.relay.in.{uuid.uuid4().hex[:8]}", f"bench.relay.out.{uuid.uuid4().hex[:8]}"
    await create_topics(bootstrap, source, target)
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"bench-relay-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=500,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
    await consumer.start()
    await producer.start()
    forwarded = 0
    total = len(payload)

    async def relay() -> None:
        nonlocal forwarded
        while forwarded < total:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            futures = []
            offsets: dict[TopicPartition, int] = {}
            for partition, records in batches.items():
                for record in records:
                    futures.append(await producer.send(target, record.value, key=record.key))
                offsets[partition] = records[-1].offset + 1
            await asyncio.gather(*futures)
            if offsets:
                await consumer.commit(offsets)
            forwarded += len(futures)

    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        started = time.perf_counter()
        running = asyncio.create_task(relay())
        await produce(bootstrap, source, [json.dumps(e).encode() for e in payload])
        await asyncio.wait_for(running, 120)
        return time.perf_counter() - started
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    stack = discover()
    if stack is None:
        raise SystemExit("no stack: run `make up` (or export the variables in .stack/env)")
    run = uuid.uuid4().hex[:8]
    ingest = f"bench.ingest.{run}"
    asyncio.run(create_topics(stack.kafka_bootstrap, ingest))
    intake = ServiceProcess(
        "intake",
        stack,
        name=f"intake-bench-{run}",
        ingest_topic=ingest,
        dead_letter_topic=f"bench.ingest.dlq.{run}",
        rate_limit_per_second="0",
        kafka__group_id=f"intake-bench-{run}",
        log_level="WARNING",
        # The bench's events go to its own output topics, not to the sla-engine's input.
        output_topic_prefix=f"bench.{run}.",
    )
    intake.start()
    try:
        tenant = f"bench-{run}"
        key = create_api_key(stack, tenant)
        http_events = events(tenant, args.events, f"http-{run}")
        kafka_events = events(tenant, args.events, f"kafka-{run}")
        http_seconds = asyncio.run(bench_http(intake.url, key, http_events, args.batch, args.concurrency))
        accepted_seconds, delivered_seconds = asyncio.run(bench_kafka_path(stack, ingest, tenant, kafka_events))
        relay_seconds = asyncio.run(bench_raw_relay(stack.kafka_bootstrap, kafka_events))
    finally:
        intake.stop()
    n = args.events
    http_rate, kafka_rate, delivered_rate, relay_rate = (
        n / http_seconds,
        n / accepted_seconds,
        n / delivered_seconds,
        n / relay_seconds,
    )
    print(f"events per path: {n} (HTTP batches of {args.batch}, {args.concurrency} clients)")
    print(f"intake HTTP batches, accepted:        {http_rate:10.0f} events/s")
    print(f"intake Kafka path, accepted:          {kafka_rate:10.0f} events/s")
    print(f"intake Kafka path, delivered:         {delivered_rate:10.0f} events/s")
    print(f"raw aiokafka relay (baseline):        {relay_rate:10.0f} events/s")
    print(f"ratio Kafka path accepted / baseline: {kafka_rate / relay_rate:10.2f}")
    print(f"ratio HTTP accepted / baseline:       {http_rate / relay_rate:10.2f}")


if __name__ == "__main__":
    main()
