"""Reading what the services published, with a fresh consumer group each time; moving a group to the end."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Collection
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient


async def collect(
    bootstrap: str,
    topic: str,
    until: Callable[[list[dict[str, Any]]], bool],
    *,
    tenant: str | None = None,
    within: float = 60.0,
) -> list[dict[str, Any]]:
    """Read `topic` from the beginning until `until(events)` holds; events filtered by tenant."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
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


async def skip_to_the_end(bootstrap: str, groups: Collection[str]) -> dict[str, int]:
    """Commit the end of every partition each of these consumer groups has offsets on, while no member runs:
    a fleet started next reads only what is produced from now on. Returns the records skipped per group."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        known = {str(listed[0]) for listed in await admin.list_consumer_groups()}
        committed = {group: await admin.list_consumer_group_offsets(group) for group in groups if group in known}
    finally:
        await admin.close()
    skipped: dict[str, int] = {}
    for group, offsets in committed.items():
        partitions = [tp for tp, at in offsets.items() if at is not None and at.offset >= 0]
        if not partitions:
            continue
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            await consumer.commit({tp: ends[tp] for tp in partitions})
        finally:
            await consumer.stop()
        skipped[group] = sum(max(0, ends[tp] - offsets[tp].offset) for tp in partitions)
    return skipped
