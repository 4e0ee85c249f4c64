"""Notifications under load: 10,000 clocks breaching within one minute, and a backlog of 10,000 at once.

Reporting runs as a real process (its own consumer group from the end of the topics) with one rule: every
`breached` goes to a signed (Standard Webhooks) webhook, a receiver on loopback in this process (its own
thread) that stamps each arrival.

1. Paced: 10,000 `breached` transitions with breach instants spread evenly over 60 s, each published to
   `sla.clocks.v1` at its instant (as the sla-engine's timers do). Lateness = arrival at the receiver -
   breach instant (consumer, planning in the read-model transaction, the delivery pass, signing, HTTP):
   p50/p99/max. The engine's own timer lateness is bench/timers.
2. Backlog: 10,000 `breached` published at once; deliveries/s from the first publish to the last arrival.
Both for the delivery settings as they were and as they are (`SETTINGS`: a reporting process each, one after
the other), then the baseline in the same run: a plain httpx loop posting the same signed payloads to the same
receiver, one after another, and with 50 in flight.

Run: `make bench`, or `uv run python -m bench.notifications.bench_notifications [clocks] [seconds]` with the
stack's env.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn
from aiokafka import AIOKafkaProducer
from cryptography.fernet import Fernet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reporting import tables
from scripts.localstack import Stack, discover
from scripts.processes import ServiceProcess
from slm_shared import topics
from slm_shared.auth import issue_key, store_key
from slm_shared.db import create_engine, session_factory
from slm_shared.events import CLOCK_EVENT, ApiKeyData, ClockTransitionData, make_event

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()  # a fresh Standard Webhooks secret


class Receiver:
    """A webhook receiver in its own thread: arrival time (epoch seconds) and body per `webhook-id`."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.bodies: list[tuple[dict[str, str], bytes]] = []
        self.count = 0

        async def receive(request: Request) -> Response:
            body = await request.body()
            self.count += 1
            self.arrivals.setdefault(request.headers.get("webhook-id", str(self.count)), time.time())
            self.bodies.append(({k: v for k, v in request.headers.items() if k.startswith("webhook-")}, body))
            return Response("ok")

        self.server = uvicorn.Server(
            uvicorn.Config(
                Starlette(routes=[Route("/hook", receive, methods=["POST"])]),
                host="127.0.0.1",
                port=0,
                log_level="warning",
                lifespan="off",
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def breached(tenant: str, ticket: str, at: datetime) -> Any:
    data = ClockTransitionData(
        ticket_id=ticket,
        policy_id="gold",
        policy_version=1,
        agreement="SLA",
        metric="resolution",
        cycle=1,
        transition="breached",
        state="running",
        breached=True,
        target_seconds=3600,
        elapsed_seconds=3600,
        remaining_seconds=0,
        percent=100.0,
        started_at=at - timedelta(hours=1),
        due_at=at,
        breached_at=at,
        stopped_at=None,
        service="email",
        customer="acme",
        priority="P1",
        kind="incident",
        calendar="24x7",
    )
    return make_event(
        event_id=str(uuid.uuid4()),
        source="slm://sla-engine",
        event_type=CLOCK_EVENT,
        time=at,
        tenant_id=tenant,
        subject=ticket,
        data=data,
    )


async def tenant_with_policy(stack: Stack, url: str, hook: str) -> str:
    tenant = f"bench-ntf-{uuid.uuid4().hex[:8]}"
    key = issue_key(tenant)
    engine = create_engine(stack.database_urls["reporting"], pool_size=1)
    async with session_factory(engine)() as session, session.begin():
        await store_key(
            session,
            tables.api_keys,
            ApiKeyData(key_id=key.key_id, tenant_id=tenant, key_hash=key.key_hash, status="active"),
            datetime.now(UTC),
        )
    await engine.dispose()
    async with httpx.AsyncClient(base_url=url) as client:
        answer = await client.put(
            "/v1/notification-policies",
            headers={"Authorization": f"Bearer {key.plaintext}"},
            json={
                "channels": [{"name": "hook", "type": "webhook", "url": hook, "secret": SECRET}],
                "rules": [{"id": "breaches", "triggers": ["breached"], "channel": "hook"}],
            },
        )
        answer.raise_for_status()
    return tenant


async def wait_for(receiver: Receiver, count: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if len(receiver.arrivals) >= count:
            return True
        await asyncio.sleep(0.1)
    return False


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def paced(
    producer: AIOKafkaProducer, receiver: Receiver, tenant: str, clocks: int, seconds: float
) -> dict[str, float]:
    start = time.time() + 3.0
    instants = [start + seconds * n / clocks for n in range(clocks)]
    tickets = [f"PACED-{tenant}-{n}" for n in range(clocks)]  # the tenant's own: runs share the receiver
    before, arrived = len(receiver.bodies), len(receiver.arrivals)
    publish_late: list[float] = []
    ids: dict[str, float] = {}
    for ticket, instant in zip(tickets, instants, strict=True):
        pause = instant - time.time()
        if pause > 0:
            await asyncio.sleep(pause)
        event = breached(tenant, ticket, datetime.fromtimestamp(instant, UTC))
        await producer.send(topics.CLOCKS, event.to_json_bytes(), key=f"{tenant}/{ticket}".encode())
        publish_late.append(time.time() - instant)
        ids[ticket] = instant
    await producer.flush()
    complete = await wait_for(receiver, arrived + clocks, 300)
    # webhook-id is the notification id; map arrivals back to tickets through the bodies.
    lateness = []
    for headers, body in receiver.bodies[before:]:
        ticket = _ticket(body)
        if ticket in ids and headers.get("webhook-id") in receiver.arrivals:
            lateness.append(receiver.arrivals[headers["webhook-id"]] - ids.pop(ticket))
    return {
        "delivered": len(lateness),
        "complete": float(complete),
        "p50": percentile(lateness, 0.5),
        "p99": percentile(lateness, 0.99),
        "max": max(lateness),
        "publish_p99": percentile(publish_late, 0.99),
    }


def _ticket(body: bytes) -> str:
    return str(json.loads(body)["data"]["ticket_id"])


async def backlog(producer: AIOKafkaProducer, receiver: Receiver, tenant: str, clocks: int) -> dict[str, float]:
    before = len(receiver.arrivals)
    began = time.time()
    now = datetime.now(UTC)
    for n in range(clocks):
        event = breached(tenant, f"BACKLOG-{n}", now)
        await producer.send(topics.CLOCKS, event.to_json_bytes(), key=f"{tenant}/BACKLOG-{n}".encode())
    await producer.flush()
    complete = await wait_for(receiver, before + clocks, 600)
    last = max(receiver.arrivals.values())
    return {
        "delivered": len(receiver.arrivals) - before,
        "complete": float(complete),
        "per_second": (len(receiver.arrivals) - before) / (last - began),
    }


async def plain_loops(hook: str, payloads: list[tuple[dict[str, str], bytes]]) -> tuple[float, float]:
    async with httpx.AsyncClient() as client:
        began = time.perf_counter()
        for headers, body in payloads:
            (
                await client.post(hook, content=body, headers={**headers, "content-type": "application/json"})
            ).raise_for_status()
        sequential = len(payloads) / (time.perf_counter() - began)
        semaphore = asyncio.Semaphore(50)

        async def post(headers: dict[str, str], body: bytes) -> None:
            async with semaphore:
                (
                    await client.post(hook, content=body, headers={**headers, "content-type": "application/json"})
                ).raise_for_status()

        began = time.perf_counter()
        await asyncio.gather(*(post(headers, body) for headers, body in payloads))
        concurrent = len(payloads) / (time.perf_counter() - began)
    return sequential, concurrent


# The delivery as it was (httpx, one batch of a tenant at a time, a pass every 0.5 s) and as it is (the lean
# h11 client, two batches in flight, a pass every 0.25 s), in one run. Both run today's code otherwise (e.g.
# the kit no longer logs a line per httpx request, which helped "before" too).
SETTINGS = {
    "before": {
        "notification_http_client": "httpx",
        "notification_batches_in_flight": "1",
        "notification_poll_seconds": "0.5",
    },
    "after": {},
}


async def measure(
    stack: Stack, receiver: Receiver, hook: str, producer: AIOKafkaProducer, clocks: int, seconds: float, name: str
) -> tuple[dict[str, float], dict[str, float]]:
    service = ServiceProcess(
        "reporting",
        stack,
        name=f"reporting-bench-notifications-{name}",
        kafka__group_id=f"reporting-bench-{uuid.uuid4().hex[:8]}",
        consumer_offset_reset="latest",
        period_close_enabled="false",
        notification_secret_keys=Fernet.generate_key().decode(),
        **SETTINGS[name],
    ).start(120)
    try:
        tenant = await tenant_with_policy(stack, service.url, hook)
        # Warm-up: until a probe is delivered, the consumer has its partitions and the loop runs.
        deadline = time.monotonic() + 120
        probed = len(receiver.arrivals)
        while len(receiver.arrivals) == probed and time.monotonic() < deadline:
            event = breached(tenant, f"PROBE-{uuid.uuid4().hex[:6]}", datetime.now(UTC))
            await producer.send_and_wait(topics.CLOCKS, event.to_json_bytes(), key=f"{tenant}/probe".encode())
            await wait_for(receiver, probed + 1, 5)
        first = await paced(producer, receiver, tenant, clocks, seconds)
        print(
            f"[{name}] paced: {clocks} breaches within {seconds:.0f} s, {first['delivered']:.0f} delivered"
            f"{'' if first['complete'] else ' (INCOMPLETE)'}",
            flush=True,
        )
        print(
            f"[{name}]   lateness after the breach instant: p50 {first['p50']:.3f} s, p99 {first['p99']:.3f} s, "
            f"max {first['max']:.3f} s (target p99 <= 2 s); publisher p99 {first['publish_p99']:.3f} s late"
        )
        second = await backlog(producer, receiver, tenant, clocks)
        print(
            f"[{name}] backlog: {clocks} breaches at once: {second['per_second']:.0f} deliveries/s end to end "
            f"(Kafka, read model + plan, claim, sign, send, record){'' if second['complete'] else ' INCOMPLETE'}",
            flush=True,
        )
        return first, second
    finally:
        service.stop()


async def main(clocks: int, seconds: float) -> None:
    stack = discover()
    if stack is None:
        sys.exit("no stack: run `make up` and source .stack/env")
    receiver = Receiver()
    hook = receiver.start()
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap, enable_idempotence=True, acks="all", linger_ms=5
    )
    await producer.start()
    try:
        results = {name: await measure(stack, receiver, hook, producer, clocks, seconds, name) for name in SETTINGS}
        payloads = receiver.bodies[-clocks:]
        sequential, concurrent = await plain_loops(hook, payloads)
        print(f"\n{'':8} {'paced p50':>10} {'paced p99':>10} {'paced max':>10} {'backlog/s':>10}")
        for name, (first, second) in results.items():
            print(
                f"{name:8} {first['p50']:>9.3f}s {first['p99']:>9.3f}s {first['max']:>9.3f}s "
                f"{second['per_second']:>10.0f}"
            )
        print(
            f"baseline, the same signed payloads by a plain httpx loop: {sequential:.0f}/s one at a time, "
            f"{concurrent:.0f}/s with 50 in flight"
        )
        print(f"median request body {statistics.median(len(b) for _, b in payloads)} bytes")
    finally:
        await producer.stop()
        receiver.stop()


if __name__ == "__main__":
    arguments = [float(a) for a in sys.argv[1:3]]
    asyncio.run(main(int(arguments[0]) if arguments else 10_000, arguments[1] if len(arguments) > 1 else 60.0))
