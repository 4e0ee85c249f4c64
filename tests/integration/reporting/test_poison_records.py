"""A poison record on each topic reporting consumes is set aside once; its partition keeps flowing; a restart that is
handed it again skips it. A reporting app of its own, in-process, on the real broker and database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncEngine

from reporting.app import create_app
from reporting.settings import ReportingSettings
from scripts.localstack import Stack
from slm_shared import topics
from slm_shared.db import create_engine
from slm_shared.events import API_KEY_EVENT, FEEDBACK_EVENT, CloudEvent, FeedbackData, make_event
from tests.integration.reporting.events import clock_event, local, ticket_event
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
from tests.support.signing import PUBLIC_KEY, signed_key

pytestmark = pytest.mark.integration


def feedback(tenant: str, ticket: str, *, event_id: str | None = None, source: str = "survey://acme") -> CloudEvent:
    return make_event(
        event_id=event_id or uuid.uuid4().hex,
        source=source,
        event_type=FEEDBACK_EVENT,
        time=local("10-09 10:00"),
        tenant_id=tenant,
        subject=ticket,
        data=FeedbackData(ticket_id=ticket, service="email", score=5, scale=5),
    )


def key_event(tenant: str, key_id: str, *, event_id: str | None = None, source: str = "slm://intake") -> CloudEvent:
    return make_event(
        event_id=event_id or uuid.uuid4().hex,
        source=source,
        event_type=API_KEY_EVENT,
        time=datetime.now(UTC),
        tenant_id=tenant,
        subject=key_id,
        data=signed_key(tenant, key_id),
    )


async def count(engine: AsyncEngine, query: str, tenant: str) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(sa.text(query), {"tenant": tenant})).scalar_one())


async def test_a_poison_record_on_each_consumed_topic_is_set_aside_once_and_skipped_after_a_restart(
    stack: Stack,
) -> None:
    tenant = f"poison-{uuid.uuid4().hex[:8]}"
    group = f"reporting-test-{uuid.uuid4().hex[:8]}"
    settings = ReportingSettings(
        database_url=stack.database_urls["reporting"],
        log_level="WARNING",
        outbox_poll_seconds=0.1,
        kafka={"bootstrap_servers": stack.kafka_bootstrap, "group_id": group},
        period_close_enabled=False,
        public_base_url="http://reporting.test",
        key_announcement_public_keys=PUBLIC_KEY,
    )
    consumed_topics = [topics.CLOCKS, topics.TICKETS, topics.FEEDBACK, topics.TENANTS]
    await ensure_topics(stack.kafka_bootstrap, consumed_topics)
    # The API-key subscriber consumes in a group of its own.
    group_of = {topic: f"{group}-api-keys" if topic == topics.TENANTS else group for topic in consumed_topics}
    await start_group_at_end(
        stack.kafka_bootstrap,
        group,
        [topics.CLOCKS, topics.TICKETS, topics.FEEDBACK, topics.SLO_STATUS, topics.SLO_ALERTS],
    )
    await start_group_at_end(stack.kafka_bootstrap, group_of[topics.TENANTS], [topics.TENANTS])
    engine = create_engine(stack.database_urls["reporting"], pool_size=2)

    common: dict[str, Any] = {"metric": "response", "priority": "P2", "started_at": local("10-08 09:00")}
    clocks = [
        clock_event(
            tenant,
            f"INC-{n}",
            "met",
            local("10-08 09:30"),
            state="met",
            elapsed=1800,
            stopped_at=local("10-08 09:30"),
            **common,
        )
        for n in (1, 3)
    ]
    # Valid by the contract, but 3e9 seconds do not fit the read model's integer column.
    clock_poison = clock_event(
        tenant,
        "INC-2",
        "met",
        local("10-08 09:30"),
        state="met",
        elapsed=3_000_000_000,
        target=3_000_000_000,
        stopped_at=local("10-08 09:30"),
        **common,
    )
    tickets = [
        ticket_event(tenant, f"INC-{n}", local("10-08 09:00"), "created", "new", priority="P2") for n in (1, 2, 3)
    ]
    ticket_poison = ticket_event(tenant, "INC-4", local("10-08 09:00"), "created", "new", priority="P2")
    # Its source and id (512 four-byte characters each) make an inbox key PostgreSQL refuses.
    ticket_poison = ticket_poison.model_copy(update={"id": unindexable(), "source": unindexable(seed=1)})
    feedbacks = [feedback(tenant, "INC-1"), feedback(tenant, "INC-3")]
    feedback_poison = feedback(tenant, "INC-2", event_id=unindexable(), source=unindexable(seed=1))
    keys = [key_event(tenant, f"k{n}-{uuid.uuid4().hex[:6]}") for n in range(2)]
    key_poison = key_event(tenant, "k-poison", event_id=unindexable(), source=unindexable(seed=1))
    not_a_key = tickets[0]  # another event type on the topic: ignored, never blocking

    plan = {
        topics.CLOCKS: [clocks[0], clock_poison, clocks[1]],
        topics.TICKETS: [tickets[0], ticket_poison, *tickets[1:]],
        topics.FEEDBACK: [feedbacks[0], feedback_poison, feedbacks[1]],
        topics.TENANTS: [keys[0], not_a_key, key_poison, keys[1]],
    }
    poisons = {topic: events[1 if topic != topics.TENANTS else 2] for topic, events in plan.items()}
    sent: dict[str, list[tuple[int, int]]] = {}

    async def all_committed() -> bool:
        for topic in plan:
            partition, last = sent[topic][-1]
            if await committed(stack.kafka_bootstrap, group_of[topic], topic, partition) != last + 1:
                return False
        return True

    try:
        async with LifespanManager(create_app(settings), startup_timeout=120, shutdown_timeout=60):
            for topic, events in plan.items():
                sent[topic] = await produce(
                    stack.kafka_bootstrap, topic, [e.to_json_bytes() for e in events], key=f"{tenant}/INC-1".encode()
                )
            await eventually(all_committed, "every partition committed past its poison record")
        assert await count(
            engine,
            "SELECT count(*) FROM inbox WHERE consumer = 'reporting.read-models' AND tenant_id = :tenant",
            tenant,
        ) == len(clocks) + len(tickets) + len(feedbacks)
        assert await count(engine, "SELECT count(*) FROM api_keys WHERE tenant_id = :tenant", tenant) == len(keys)
        rows = [*await set_aside_rows(engine, group), *await set_aside_rows(engine, group_of[topics.TENANTS])]
        assert sorted((r.topic, r.offset, r.value) for r in rows) == sorted(
            (topic, sent[topic][plan[topic].index(event)][1], event.to_json_bytes()) for topic, event in poisons.items()
        )
        assert {r.tenant_id for r in rows} == {tenant}
        reasons = {r.topic: r.reason for r in rows}
        assert "out of int32 range" in reasons[topics.CLOCKS]
        # Refused at parsing, at the first try, rather than by PostgreSQL's index after three.
        assert {reasons[topic] for topic in (topics.TICKETS, topics.FEEDBACK, topics.TENANTS)} == {
            "RecordRefused: source: 2048 bytes of UTF-8, over 512"
        }

        # A crash before the commit: the group starts again from each first record; poison ones are skipped.
        for topic in plan:
            await rewind(stack.kafka_bootstrap, group_of[topic], topic, sent[topic][0][0], sent[topic][0][1])
        skipped = {topic: consumed(topic, "skipped") for topic in plan}
        async with LifespanManager(create_app(settings), startup_timeout=120, shutdown_timeout=60):
            await eventually(all_committed, "the restarted consumers committed their offsets")
        assert {topic: consumed(topic, "skipped") - skipped[topic] for topic in plan} == dict.fromkeys(plan, 1)
        assert len(
            [*await set_aside_rows(engine, group), *await set_aside_rows(engine, group_of[topics.TENANTS])]
        ) == len(rows)
    finally:
        await engine.dispose()
