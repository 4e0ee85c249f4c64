"""A poison record on each topic the sla-engine consumes is set aside once; its partition keeps flowing; a restart
that is handed it again skips it. The app runs in-process on the real broker and database."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncEngine

from scripts.localstack import Stack
from sla_engine.app import create_app
from sla_engine.settings import SlaEngineSettings
from slm_shared import topics
from slm_shared.db import create_engine
from slm_shared.events import API_KEY_EVENT, AVAILABILITY_EVENT, MAINTENANCE_EVENT, MEASUREMENT_EVENT
from tests.support.events import ticket_event
from tests.support.poison import (
    committed,
    consumed,
    ensure_topics,
    eventually,
    produce,
    rewind,
    set_aside_rows,
    start_group_at_end,
    unindexable,
)
from tests.support.signing import PUBLIC_KEY, signed_key_json

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


def encoded(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def signal(tenant: str, kind: str, data: dict[str, Any], time: str | None = None) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": "probe://edge",
        "type": kind,
        "time": time or (NOW - timedelta(minutes=2)).isoformat(),
        "tenantid": tenant,
        "subject": data["service"],
        "data": data,
    }


def key_event(tenant: str, key_id: str, **envelope: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": "slm://intake",
        "type": API_KEY_EVENT,
        "time": NOW.isoformat(),
        "tenantid": tenant,
        "subject": key_id,
        **envelope,
        "data": signed_key_json(tenant, key_id),
    }


@asynccontextmanager
async def running_engine(settings: SlaEngineSettings) -> AsyncIterator[None]:
    async with LifespanManager(create_app(settings), startup_timeout=120, shutdown_timeout=60):
        yield


async def count(engine: AsyncEngine, query: str, **parameters: str) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(sa.text(query), parameters)).scalar_one())


async def test_a_poison_record_on_each_consumed_topic_is_set_aside_once_and_skipped_after_a_restart(
    stack: Stack,
) -> None:
    tenant = f"poison-{uuid.uuid4().hex[:8]}"
    group = f"sla-engine-test-{uuid.uuid4().hex[:8]}"
    settings = SlaEngineSettings(
        database_url=stack.database_urls["sla-engine"],
        log_level="WARNING",
        outbox_poll_seconds=0.1,
        kafka={"bootstrap_servers": stack.kafka_bootstrap, "group_id": group},
        key_announcement_public_keys=PUBLIC_KEY,
    )
    await ensure_topics(stack.kafka_bootstrap, [topics.TICKETS, topics.SIGNALS, topics.TENANTS])
    # New groups that skip the shared topics' history: only this test's records are theirs.
    await start_group_at_end(stack.kafka_bootstrap, group, [topics.TICKETS])
    await start_group_at_end(stack.kafka_bootstrap, f"{group}-api-keys", [topics.TENANTS])
    await start_group_at_end(stack.kafka_bootstrap, f"{group}-signals", [topics.SIGNALS])
    engine = create_engine(stack.database_urls["sla-engine"], pool_size=2)

    tickets = [ticket_event(tenant, "INC-1", NOW - timedelta(minutes=30 - n), action="updated") for n in range(5)]
    # A snapshot whose source and id (512 four-byte characters each) would make an inbox key PostgreSQL refuses.
    ticket_poison = ticket_event(
        tenant, "INC-1", NOW - timedelta(minutes=3), event_id=unindexable(), source=unindexable(seed=1)
    )
    available = {"service": "email", "component": "smtp", "state": "up"}
    signals = [
        signal(tenant, AVAILABILITY_EVENT, available),
        signal(tenant, MEASUREMENT_EVENT, {"service": "api", "sli": "latency_ms", "value": 120.0}),
        signal(tenant, AVAILABILITY_EVENT, {**available, "state": "down"}),
        signal(tenant, MEASUREMENT_EVENT, {"service": "api", "sli": "latency_ms", "value": 90.0}),
    ]
    signal_poisons = {
        "time: 1900-01-01T00:00:00+00:00 is more than 100 days old": signal(
            tenant, AVAILABILITY_EVENT, available, time="1900-01-01T00:00:00Z"
        ),
        "start: 0001-01-01T00:30:00+01:00 is outside the range of UTC instants": signal(
            tenant,
            MAINTENANCE_EVENT,
            {
                "service": "email",
                "window_id": "mw-1",
                "start": "0001-01-01T00:30:00+01:00",
                "end": "2026-12-31T00:00:00Z",
                "status": "scheduled",
            },
        ),
        "data.service: longer than 200 bytes in UTF-8": signal(
            tenant, MEASUREMENT_EVENT, {"service": unindexable(), "sli": unindexable(seed=1), "value": 1.0}
        ),
    }
    keys = [key_event(tenant, f"k{n}-{uuid.uuid4().hex[:6]}") for n in range(3)]
    not_a_key = ticket_event(tenant, "INC-9", NOW)  # another event type on the topic: ignored, never blocking
    key_poison = key_event(tenant, "k-poison", id=unindexable(), source=unindexable(seed=1))

    plan = {
        topics.TICKETS: (group, [*tickets[:2], ticket_poison, *tickets[2:]], f"{tenant}/INC-1"),
        topics.SIGNALS: (f"{group}-signals", [signals[0], *signal_poisons.values(), *signals[1:]], f"{tenant}/email"),
        topics.TENANTS: (f"{group}-api-keys", [keys[0], not_a_key, key_poison, *keys[1:]], f"{tenant}/keys"),
    }
    poison_values = {encoded(e) for e in [ticket_poison, key_poison, *signal_poisons.values()]}
    sent: dict[str, list[tuple[int, int]]] = {}

    async def all_committed(extra: int = 0) -> bool:
        for topic, (consumer_group, _, _) in plan.items():
            partition, last = sent[topic][-1]
            if await committed(stack.kafka_bootstrap, consumer_group, topic, partition) != last + 1 + extra:
                return False
        return True

    try:
        async with running_engine(settings):
            for topic, (_, events, key) in plan.items():
                sent[topic] = await produce(stack.kafka_bootstrap, topic, [encoded(e) for e in events], key.encode())
            await eventually(all_committed, "every partition committed past its poison records")
        assert await count(
            engine,
            "SELECT count(*) FROM inbox WHERE consumer = 'sla-engine.tickets' AND tenant_id = :tenant",
            tenant=tenant,
        ) == len(tickets)
        assert await count(
            engine,
            "SELECT count(*) FROM inbox WHERE consumer = 'sla-engine.signals' AND tenant_id = :tenant",
            tenant=tenant,
        ) == len(signals)
        assert await count(engine, "SELECT count(*) FROM api_keys WHERE tenant_id = :tenant", tenant=tenant) == len(
            keys
        )

        rows = [
            *await set_aside_rows(engine, group),
            *await set_aside_rows(engine, f"{group}-signals"),
            *await set_aside_rows(engine, f"{group}-api-keys"),
        ]
        assert sorted((r.topic, r.offset) for r in rows) == sorted(
            (topic, offset)
            for topic, (_, events, _) in plan.items()
            for (_, offset), event in zip(sent[topic], events, strict=True)
            if encoded(event) in poison_values
        )
        assert {r.value for r in rows} == poison_values
        assert {r.tenant_id for r in rows} == {tenant}
        by_value = {r.value: r for r in rows}
        for reason, event in signal_poisons.items():
            assert by_value[encoded(event)].error_type == "RecordRefused"
            assert by_value[encoded(event)].reason.startswith(f"RecordRefused: {reason}")
        # Refused at parsing, at the first try, rather than by PostgreSQL's index after three.
        for poison in (ticket_poison, key_poison):
            assert by_value[encoded(poison)].reason == "RecordRefused: source: 2048 bytes of UTF-8, over 512"

        # A crash before the commit: each group starts again from its first record; poison ones are skipped.
        for topic, (consumer_group, _, _) in plan.items():
            await rewind(stack.kafka_bootstrap, consumer_group, topic, sent[topic][0][0], sent[topic][0][1])
        skipped = {topic: consumed(topic, "skipped") for topic in plan}
        async with running_engine(settings):
            await eventually(all_committed, "the restarted consumers committed their offsets")
        assert {topic: consumed(topic, "skipped") - skipped[topic] for topic in plan} == {
            topics.TICKETS: 1,
            topics.SIGNALS: len(signal_poisons),
            topics.TENANTS: 1,
        }
        assert len(
            [
                *await set_aside_rows(engine, group),
                *await set_aside_rows(engine, f"{group}-signals"),
                *await set_aside_rows(engine, f"{group}-api-keys"),
            ]
        ) == len(rows)
    finally:
        await engine.dispose()
