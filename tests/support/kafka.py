"""Reading what the services published, with a fresh consumer group each time."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer


async def collect(
    bootstrap: str, topic: str, until: Callable[[list[dict[str, Any]]], bool], *, tenant: str | None = None,
    within: float = 60.0,
) -> list[dict[str, Any]]:
    """Read `topic` from the beginning until `until(events)` holds; events filtered by tenant."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"test-{uuid.uuid4()}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    try:
        while not until(events) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                for record in records:
                    try:
                        event = json.loads(record.value)
                    except ValueError:  # another test's hostile bytes on the shared topic (tests/hostile)
                        continue
                    if isinstance(event, dict) and (tenant is None or event.get("tenantid") == tenant):
                        events.append(event)
    finally:
        await consumer.stop()
    return events
