"""Helpers for intake's integration tests: an in-process app, tenants with keys, reading output topics."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from asgi_lifespan import LifespanManager
from cryptography.fernet import Fernet
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.app import create_app
from intake.handlers.keys import KeyAdmin
from intake.settings import IntakeSettings
from intake.unit_of_work import IntakeUnitOfWork
from scripts.localstack import Stack
from slm_shared.db import create_engine, session_factory
from slm_shared.events import API_SCOPES, ApiScope
from slm_shared.secret_cipher import SecretCipher
from slm_shared.settings import KafkaSettings


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def intake_settings(stack: Stack, **overrides: Any) -> IntakeSettings:
    """Settings for a test instance: its own ingest/DLQ topics and consumer group, no rate limit."""
    suffix = uuid.uuid4().hex[:10]
    values: dict[str, Any] = {
        "database_url": stack.database_urls["intake"],
        "kafka": KafkaSettings(
            bootstrap_servers=stack.kafka_bootstrap, group_id=f"intake-test-{suffix}", topic_partitions=3
        ),
        "ingest_topic": f"test.ingest.{suffix}",
        "dead_letter_topic": f"test.ingest.dlq.{suffix}",
        "rate_limit_per_second": 0,
        # Many tests fail authentication on purpose; the throttle has its own test with its own instance.
        "auth_failure_burst": 1_000_000,
        "webhook_secret_keys": stack.secret("intake", "webhook_secret_keys") or Fernet.generate_key().decode(),
        "outbox_poll_seconds": 0.1,
        "log_level": "WARNING",
        **overrides,
    }
    return IntakeSettings.model_validate(values)


@dataclass
class RunningIntake:
    app: FastAPI
    settings: IntakeSettings
    client: httpx.AsyncClient


@asynccontextmanager
async def running_intake(settings: IntakeSettings) -> AsyncIterator[RunningIntake]:
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake", timeout=60) as client:
            yield RunningIntake(app, settings, client)


@dataclass(frozen=True)
class Tenant:
    id: str
    key: str
    key_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


class Keys:
    """Creates tenants with keys (as `slm-intake keys create` does) and revokes them."""

    def __init__(self, engine: AsyncEngine) -> None:
        sessions = session_factory(engine)
        no_webhook_keys = SecretCipher(None)  # the keys' admin never reads a webhook secret
        self.admin = KeyAdmin(lambda: IntakeUnitOfWork(sessions, no_webhook_keys))

    async def tenant(self, prefix: str = "t", scopes: tuple[ApiScope, ...] = API_SCOPES) -> Tenant:
        issued = await self.admin.create(unique(prefix), scopes)
        return Tenant(issued.tenant_id, issued.plaintext, issued.key_id)

    async def another_key(self, tenant: Tenant, scopes: tuple[ApiScope, ...]) -> Tenant:
        """One more key of the same tenant, with these scopes."""
        issued = await self.admin.create(tenant.id, scopes)
        return Tenant(issued.tenant_id, issued.plaintext, issued.key_id)


def intake_engine(stack: Stack) -> AsyncEngine:
    return create_engine(stack.database_urls["intake"], pool_size=2)


async def ensure_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic not in set(await admin.list_topics()):
            await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


class TopicReader:
    """Reads what was published to topics after `start()`, with a fresh consumer group, counting by id.

    The offsets are taken at `start()`, so a test reads only the records produced after it began, however
    long the shared topic's history is.
    """

    def __init__(self, bootstrap: str, *topics: str) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self._consumer: AIOKafkaConsumer | None = None
        self._start_offsets: dict[TopicPartition, int] = {}
        self.records: list[Any] = []

    async def start(self) -> TopicReader:
        """Note where each partition ends now; reading starts there (no consumer runs until then)."""
        for topic in self._topics:
            await ensure_topic(self._bootstrap, topic)
        probe = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        await probe.start()
        try:
            partitions = [
                TopicPartition(topic, p) for topic in self._topics for p in sorted(await self._partitions(probe, topic))
            ]
            self._start_offsets = await probe.end_offsets(partitions)
        finally:
            await probe.stop()
        return self

    async def _open(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                group_id=unique("intake-test-reader"),
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            await consumer.start()
            consumer.assign(list(self._start_offsets))
            for partition, offset in self._start_offsets.items():
                consumer.seek(partition, offset)
            self._consumer = consumer
        return self._consumer

    async def _partitions(self, consumer: AIOKafkaConsumer, topic: str) -> set[int]:
        for _ in range(50):
            found = consumer.partitions_for_topic(topic)
            if found:
                return set(found)
            await consumer._client.force_metadata_update()  # no public way to refresh metadata
            await asyncio.sleep(0.1)
        raise TimeoutError(f"topic {topic} has no partitions")

    async def read_until(self, done: Callable[[list[Any]], bool], within: float = 60.0) -> list[Any]:
        consumer = await self._open()
        deadline = time.monotonic() + within
        while not done(self.records) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=300, max_records=5000)
            for records in batches.values():
                self.records.extend(records)
        return self.records

    async def read_to_end(self) -> list[Any]:
        """Everything published up to now (call once what you wait for has arrived, to catch doubles)."""
        consumer = await self._open()
        ends = await consumer.end_offsets(list(consumer.assignment()))
        while await self._behind(ends):
            batches = await consumer.getmany(timeout_ms=300, max_records=5000)
            for records in batches.values():
                self.records.extend(records)
        return self.records

    async def _behind(self, ends: dict[TopicPartition, int]) -> bool:
        assert self._consumer is not None
        for partition, end in ends.items():
            if await self._consumer.position(partition) < end:
                return True
        return False

    def events(self, tenant: str | None = None) -> list[dict[str, Any]]:
        found = []
        for record in self.records:
            try:
                event = json.loads(record.value)
            except ValueError:
                continue
            if isinstance(event, dict) and (tenant is None or event.get("tenantid") == tenant):
                found.append(event)
        return found

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


async def drained(engine: AsyncEngine, tenant: str, within: float = 60.0) -> None:
    """Wait until the outbox holds no unpublished row of the tenant (its keys start with `<tenant>/`)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with engine.connect() as connection:
            pending = (
                await connection.execute(
                    sa.text("SELECT count(*) FROM outbox WHERE published_at IS NULL AND key LIKE :prefix"),
                    {"prefix": f"{tenant}/%"},
                )
            ).scalar()
        if pending == 0:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"outbox rows of {tenant} still unpublished after {within}s")
