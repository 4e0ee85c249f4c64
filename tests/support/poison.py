"""What the poison-record tests share: records the database refuses, set-aside rows, committed offsets, and
stopping the private PostgreSQL for a while."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

REPO = Path(__file__).resolve().parents[2]


def unindexable(length: int = 512, seed: int = 0) -> str:
    """Four-byte characters that do not compress (2,048 bytes for 512): two such key columns make an index entry
    over PostgreSQL's 2,704 bytes."""
    return "".join(chr(0x1F300 + (n * 7919 + seed) % 2000) for n in range(length))


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.25)


async def set_aside_rows(engine: AsyncEngine, group: str) -> list[Any]:
    async with engine.connect() as connection:
        return list(
            await connection.execute(
                sa.text(
                    'SELECT topic, "partition", "offset", tenant_id, value, reason, error_type FROM set_aside '
                    "WHERE consumer_group = :group ORDER BY id"
                ),
                {"group": group},
            )
        )


async def produce(bootstrap: str, topic: str, values: Sequence[bytes], key: bytes) -> list[tuple[int, int]]:
    """Send in order to one partition (one key); returns each record's (partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        sent = [await producer.send_and_wait(topic, value, key=key) for value in values]
    finally:
        await producer.stop()
    return [(metadata.partition, metadata.offset) for metadata in sent]


async def committed(bootstrap: str, group: str, topic: str, partition: int) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(TopicPartition(topic, partition))
        return offset
    finally:
        await consumer.stop()


async def start_group_at_end(bootstrap: str, group: str, topics: Sequence[str]) -> None:
    """Commit the current end of every partition for a new group: its consumers skip the topics' history."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or await _partitions(consumer, topic))
        ]
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        await consumer.commit(dict(ends.items()))
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(50):
        await consumer._client.force_metadata_update()
        found = consumer.partitions_for_topic(topic)
        if found:
            return set(found)
        await asyncio.sleep(0.1)
    raise TimeoutError(f"topic {topic} has no partitions")


class PrivatePostgres:
    """The stack's own PostgreSQL (`make up`), stopped and started with pg_ctl as its owner."""

    def __init__(self) -> None:
        state = REPO / ".stack" / "pg" / "state"
        fields = state.read_text().split() if state.exists() else []
        if len(fields) < 3 or fields[0] != "private":
            pytest.skip("the stack's PostgreSQL is not a private cluster this test may stop")
        self.data = Path(fields[2]) / "data"
        self.log = Path(fields[2]) / "postgres.log"
        pg_ctl = shutil.which("pg_ctl")
        if pg_ctl is None:
            pytest.skip("pg_ctl is not on PATH")
        self.pg_ctl = pg_ctl

    def _run(self, *arguments: str) -> None:
        command = [self.pg_ctl, "-D", str(self.data), *arguments]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd="/", timeout=120)

    async def stop(self) -> None:
        await asyncio.to_thread(self._run, "-m", "fast", "-w", "-t", "60", "stop")

    async def start(self) -> None:
        await asyncio.to_thread(self._run, "-l", str(self.log), "-w", "-t", "60", "start")


async def rewind(bootstrap: str, group: str, topic: str, partition: int, offset: int) -> None:
    """Commit an earlier offset for a group with no member, as a crash before the commit would leave it."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        target = TopicPartition(topic, partition)
        consumer.assign([target])
        await consumer.commit({target: offset})
    finally:
        await consumer.stop()


def consumed(topic: str, outcome: str) -> float:
    """This process's `slm_events_consumed_total` for a topic and outcome."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("slm_events_consumed_total", {"topic": topic, "outcome": outcome}) or 0.0


async def ensure_topics(bootstrap: str, names: Sequence[str], partitions: int = 6) -> None:
    """Create the topics a test sends to before the services would (they create them with the same default)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        missing = [name for name in names if name not in set(await admin.list_topics())]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(name, partitions, 1) for name in missing])
    finally:
        await admin.close()
