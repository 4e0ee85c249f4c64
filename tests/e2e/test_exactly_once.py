"""Nothing lost, nothing doubled: redelivery and a crash of the sla-engine in the middle of a stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from slm_shared import topics
from tests.e2e.conftest import TenantClient
from tests.support.events import BATCH_HEADERS, RESPONSE_BUNDLE, batch_body, ticket_event
from tests.support.kafka import collect

pytestmark = pytest.mark.e2e


def apply_bundle(tenant: TenantClient) -> None:
    with tenant.client(tenant.platform.sla_engine) as engine:
        answer = engine.post("/v1/config:apply", content=RESPONSE_BUNDLE, headers={"Content-Type": "application/yaml"})
        assert answer.status_code == 200, answer.text


def started_ids_by_ticket(events: list[dict[str, object]]) -> dict[str, set[str]]:
    started: dict[str, set[str]] = {}
    for event in events:
        data = event["data"]
        assert isinstance(data, dict)
        if data["transition"] == "started":
            started.setdefault(str(data["ticket_id"]), set()).add(str(event["id"]))
    return started


async def test_the_same_ticket_event_delivered_three_times_has_one_effect(tenant: TenantClient) -> None:
    apply_bundle(tenant)
    event = ticket_event(tenant.tenant, "INC-REDELIVERED", datetime.now(UTC).replace(microsecond=0))
    # A marker ticket sent with the copies' key lands on their partition after them: once the engine has
    # published both tickets' clocks, it has consumed all three copies (a marker on another partition, or one
    # seen alone, proves nothing: partitions and reconcile rounds run side by side).
    marker = ticket_event(tenant.tenant, "INC-MARKER", datetime.now(UTC).replace(microsecond=0))
    key = f"{tenant.tenant}/INC-REDELIVERED".encode()
    producer = AIOKafkaProducer(bootstrap_servers=tenant.platform.stack.kafka_bootstrap)
    await producer.start()
    try:
        # Past intake's dedup, straight onto the topic the engine consumes.
        sent = [
            await producer.send_and_wait(topics.TICKETS, json.dumps(one).encode(), key=key)
            for one in (event, event, event, marker)
        ]
    finally:
        await producer.stop()
    assert len({record.partition for record in sent}) == 1

    def both_started(got: list[dict[str, object]]) -> bool:
        return {"INC-MARKER", "INC-REDELIVERED"} <= started_ids_by_ticket(got).keys()

    events = await collect(tenant.platform.stack.kafka_bootstrap, topics.CLOCKS, both_started, tenant=tenant.tenant)
    clock_events = [e for e in events if e["subject"] == "INC-REDELIVERED"]
    assert [e["data"]["transition"] for e in clock_events] == ["started"]


async def test_a_killed_engine_restarts_and_every_ticket_has_exactly_one_clock(tenant: TenantClient) -> None:
    platform = tenant.platform
    apply_bundle(tenant)
    tickets = 2500  # two events each: 5,000 ticket events
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    events = []
    for n in range(tickets):
        events.append(ticket_event(tenant.tenant, f"INC-{n}", base + timedelta(seconds=n % 600)))
        events.append(
            ticket_event(
                tenant.tenant, f"INC-{n}", base + timedelta(seconds=n % 600 + 30), action="updated", status="open"
            )
        )

    async def send_all() -> None:
        async with httpx.AsyncClient(base_url=platform.intake.url, headers=tenant.headers, timeout=60) as intake:
            for start in range(0, len(events), 250):
                answer = await intake.post(
                    "/v1/events", content=batch_body(events[start : start + 250]), headers=BATCH_HEADERS
                )
                assert answer.json()["accepted"] == len(events[start : start + 250])

    sending = asyncio.create_task(send_all())
    await asyncio.sleep(1.5)
    platform.sla_engine.kill()  # mid-stream: no drain, no offset commit
    await sending
    platform.sla_engine.start()

    clock_events = await collect(
        platform.stack.kafka_bootstrap,
        topics.CLOCKS,
        lambda got: len(started_ids_by_ticket(got)) >= tickets,
        tenant=tenant.tenant,
        within=240,
    )
    started = started_ids_by_ticket(clock_events)
    assert len(started) == tickets
    assert all(len(ids) == 1 for ids in started.values())

    # Reporting's read model: exactly one clock per ticket.
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=platform.reporting.url, headers=tenant.headers, timeout=30) as reporting:
        while True:
            clocks = (await reporting.get("/v1/reports/slr", params={"format": "json", "clocks_limit": 10_000})).json()[
                "clocks"
            ]
            if len(clocks) >= tickets or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    per_ticket = Counter(c["ticket_id"] for c in clocks)
    assert len(per_ticket) == tickets
    assert set(per_ticket.values()) == {1}
