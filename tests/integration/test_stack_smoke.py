"""Smoke test of the local stack (deploy/local/stack.sh): a real Kafka broker and PostgreSQL answer.

Needs `make up` (or `bash deploy/local/stack.sh up`) and its environment (`.stack/env`).
"""

from __future__ import annotations

import os
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

pytestmark = pytest.mark.integration

DATABASES = ("intake", "sla_engine", "reporting")


def _require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run `make up` first", pytrace=False)
    return value


@pytest.fixture
def bootstrap() -> str:
    return _require_env("KAFKA_BOOTSTRAP_SERVERS")


@pytest.fixture
def sla_engine_url() -> str:
    return _require_env("SLA_ENGINE_DATABASE_URL")


def _asyncpg_dsn(sqlalchemy_url: str, database: str) -> str:
    """postgresql+asyncpg://user@host:port/db -> postgresql://user@host:port/<database> for asyncpg."""
    base = sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    return base.rsplit("/", 1)[0] + "/" + database


async def test_kafka_round_trip_idempotent_producer_and_group_consumer(bootstrap: str) -> None:
    topic = f"smoke-{uuid.uuid4().hex}"
    group = f"smoke-group-{uuid.uuid4().hex}"
    sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(12)}

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
        await producer.start()
        try:
            for key, value in sent.items():
                await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        received: dict[bytes, bytes] = {}
        next_offsets: dict[TopicPartition, int] = {}
        try:
            for _ in range(60):  # at most ~30 s: getmany waits up to 500 ms per round
                batches = await consumer.getmany(timeout_ms=500)
                for tp, records in batches.items():
                    for record in records:
                        assert record.key is not None
                        assert record.value is not None
                        received[record.key] = record.value
                        next_offsets[tp] = record.offset + 1
                if len(received) == len(sent):
                    break
            await consumer.commit({tp: OffsetAndMetadata(off, "") for tp, off in next_offsets.items()})
        finally:
            await consumer.stop()

        assert received == sent
        committed = await admin.list_consumer_group_offsets(group)
        assert sum(meta.offset for meta in committed.values()) == len(sent)
    finally:
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()


@pytest.mark.parametrize("database", DATABASES)
async def test_postgres_databases_accept_connections(sla_engine_url: str, database: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(sla_engine_url, database), timeout=10)
    try:
        assert await conn.fetchval("SELECT current_database()") == database
    finally:
        await conn.close()
