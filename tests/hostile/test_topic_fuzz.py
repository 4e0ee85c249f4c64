"""Raw bytes on every consumed topic: no record stops a consumer, and good events beside them take effect.

Property-based: hypothesis draws hostile record values (random bytes, JSON that is no CloudEvent, envelopes with
random `data`, valid events of the topic's type with one field replaced by junk, truncated events) and produces
them onto each topic the three services consume, between good events. Each consumer group must commit past
every record (a poison one is set aside, an invalid one rejected or ignored, never retried forever) and the good
ticket events sent after the hostile ones must reach the sla-engine.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scripts.localstack import Stack
from slm_shared import topics
from slm_shared.events import (
    API_KEY_EVENT,
    CLOCK_EVENT,
    FEEDBACK_EVENT,
    MEASUREMENT_EVENT,
    SLO_ALERT_EVENT,
    SLO_STATUS_EVENT,
    TICKET_EVENT,
)
from tests.e2e.conftest import TenantClient
from tests.hostile.conftest import Tally, tickets_known_downstream
from tests.support.events import ticket_event
from tests.support.poison import committed, ensure_topics, produce

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

INGEST = "itsm.ingest.v1"
# Each consumed topic and the consumer groups that read it (service name, `-signals`, `-api-keys`).
READERS = {
    INGEST: ["intake"],
    topics.TICKETS: ["sla-engine", "reporting"],
    topics.SIGNALS: ["sla-engine-signals"],
    topics.TENANTS: ["sla-engine-api-keys", "reporting-api-keys"],
    topics.CLOCKS: ["reporting"],
    topics.FEEDBACK: ["reporting"],
    topics.SLO_STATUS: ["reporting"],
    topics.SLO_ALERTS: ["reporting"],
}
TYPES = {
    INGEST: TICKET_EVENT,
    topics.TICKETS: TICKET_EVENT,
    topics.SIGNALS: MEASUREMENT_EVENT,
    topics.TENANTS: API_KEY_EVENT,
    topics.CLOCKS: CLOCK_EVENT,
    topics.FEEDBACK: FEEDBACK_EVENT,
    topics.SLO_STATUS: SLO_STATUS_EVENT,
    topics.SLO_ALERTS: SLO_ALERT_EVENT,
}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def hostile_values(topic: str, tenant: str) -> st.SearchStrategy[bytes]:
    def envelope(data: Any, **overrides: Any) -> bytes:
        event = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "fuzz://topic",
            "type": TYPES[topic],
            "time": datetime.now(UTC).isoformat(),
            "tenantid": tenant,
            "subject": "FUZZ-1",
            "data": data,
            **overrides,
        }
        return json.dumps(event).encode()

    good = ticket_event(tenant, "FUZZ-1", datetime.now(UTC) - timedelta(minutes=1))
    fields = st.sampled_from(["id", "source", "type", "time", "tenantid", "specversion", "subject"])
    return st.one_of(
        st.binary(max_size=600),
        JSON_VALUES.map(lambda value: json.dumps(value).encode()),
        JSON_VALUES.map(envelope),
        st.tuples(fields, JSON_VALUES).map(lambda pair: envelope(good["data"], **{pair[0]: pair[1]})),
        st.integers(1, 200).map(lambda cut: json.dumps(good).encode()[:cut]),
    )


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_bytes_on_every_consumed_topic_never_stop_a_consumer(
    data: st.DataObject,
    stack: Stack,
    tenant: TenantClient,
    tally: Tally,
) -> None:
    last: dict[tuple[str, int], int] = {}
    good_tickets: list[str] = []

    async def send() -> None:
        await ensure_topics(stack.kafka_bootstrap, list(READERS))
        for topic in READERS:
            values = data.draw(st.lists(hostile_values(topic, tenant.tenant), min_size=10, max_size=25), label=topic)
            # Keyed like real records, so they share a partition with the good events of the same key.
            key = f"{tenant.tenant}/FUZZ-{uuid.uuid4().hex[:6]}".encode()
            for partition, offset in await produce(stack.kafka_bootstrap, topic, values, key=key):
                last[(topic, partition)] = max(offset, last.get((topic, partition), -1))
            tally.records(f"topic fuzz: {topic}", len(values))
        # Good events after the hostile ones, on the ingest topic and through HTTP.
        ticket = f"GOOD-{uuid.uuid4().hex[:8]}"
        good_tickets.append(ticket)
        event = ticket_event(tenant.tenant, ticket, datetime.now(UTC) - timedelta(minutes=1))
        await produce(
            stack.kafka_bootstrap, INGEST, [json.dumps(event).encode()], key=f"{tenant.tenant}/{ticket}".encode()
        )

    asyncio.run(send())

    async def all_committed() -> list[str]:
        behind = []
        for (topic, partition), offset in last.items():
            for group in READERS[topic]:
                position = await committed(stack.kafka_bootstrap, group, topic, partition)
                if position is None or position <= offset:
                    behind.append(f"{group} on {topic}[{partition}] at {position}, record {offset}")
        return behind

    async def wait_committed() -> list[str]:
        behind = await all_committed()
        for _ in range(180):
            if not behind:
                break
            await asyncio.sleep(0.5)
            behind = await all_committed()
        return behind

    assert asyncio.run(wait_committed()) == []
    assert tickets_known_downstream(tenant, good_tickets) == set(good_tickets)
