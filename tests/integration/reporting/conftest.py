"""Reporting in-process on the real stack: the app under LifespanManager, events published to real Kafka.

The app's clock is a `MovableClock` the tests set, so period close and the dashboard run at chosen instants.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from asgi_lifespan import LifespanManager
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from reporting import tables
from reporting.app import create_app
from reporting.settings import ReportingSettings
from scripts.localstack import Stack
from slm_shared import topics
from slm_shared.auth import issue_key, store_key
from slm_shared.db import create_engine, session_factory
from slm_shared.events import (
    ApiKeyData,
    CloudEvent,
)

NOTIFICATION_SECRET_KEY = Fernet.generate_key().decode()


class MovableClock:
    """`now()` for the app: real time until a test pins it."""

    def __init__(self) -> None:
        self.pinned: datetime | None = None

    def __call__(self) -> datetime:
        return self.pinned or datetime.now(UTC)


@dataclass
class Reporting:
    app: object
    client: httpx.AsyncClient
    clock: MovableClock
    stack: Stack
    producer: AIOKafkaProducer
    sessions: async_sessionmaker[AsyncSession]

    async def tenant(self, prefix: str = "rep") -> Tenant:
        """A fresh tenant with an API key stored directly (in production it arrives from intake)."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        key = issue_key(name)
        async with self.sessions() as session, session.begin():
            await store_key(
                session,
                tables.api_keys,
                ApiKeyData(key_id=key.key_id, tenant_id=name, key_hash=key.key_hash, status="active"),
                datetime.now(UTC),
            )
        return Tenant(name, key.plaintext, self)

    async def publish(self, events: Iterable[CloudEvent]) -> None:
        for event in events:
            key = f"{event.tenantid}/{event.subject}"
            await self.producer.send(topics.TOPIC_OF[event.type], event.to_json_bytes(), key=key.encode())
        await self.producer.flush()

    async def wait_applied(self, tenant: str, count: int, within: float = 90.0) -> None:
        """Until the inbox holds `count` distinct events of the tenant (every one applied and committed)."""
        deadline = time.monotonic() + within
        seen = -1
        while time.monotonic() < deadline:
            async with self.sessions() as session:
                seen = (
                    await session.execute(
                        sa.select(sa.func.count())
                        .select_from(tables.inbox)
                        .where(tables.inbox.c.tenant_id == tenant, tables.inbox.c.consumer == "reporting.read-models")
                    )
                ).scalar_one()
            if seen >= count:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"only {seen} of {count} events of {tenant} applied")


@dataclass(frozen=True)
class Tenant:
    name: str
    key: str
    reporting: Reporting

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def get(self, path: str, **params: str | int) -> httpx.Response:
        return await self.reporting.client.get(path, params=params, headers=self.headers)


async def consuming_from_the_end(app: object, within: float = 60.0) -> None:
    """Until every subscriber has its partitions and knows its starting offsets: events sent after this are read."""
    deadline = time.monotonic() + within
    broker = app.state.runtime.broker  # type: ignore[attr-defined]
    for subscriber in broker.subscribers:
        while not (subscriber.consumer and subscriber.consumer.assignment()):
            if time.monotonic() > deadline:
                raise TimeoutError("the reporting consumers got no partitions")
            await asyncio.sleep(0.2)
        for partition in subscriber.consumer.assignment():
            await subscriber.consumer.position(partition)


# Package-scoped: its outbox relay on the test loop must not outlive the package (see the intake conftest).
@pytest.fixture(scope="package")
async def reporting(stack: Stack) -> AsyncIterator[Reporting]:
    clock = MovableClock()
    settings = ReportingSettings(
        database_url=stack.database_urls["reporting"],
        # A group of its own that starts at the end of the topics: other runs' events are not ours to replay.
        kafka={"bootstrap_servers": stack.kafka_bootstrap, "group_id": f"reporting-test-{uuid.uuid4().hex[:8]}"},
        consumer_offset_reset="latest",
        period_close_enabled=False,
        amendment_quiet_seconds=0,
        public_base_url="http://reporting.test",
        # Notifications (test_notifications.py): secrets stored encrypted, passes often, links to the engine.
        notification_secret_keys=NOTIFICATION_SECRET_KEY,
        notification_poll_seconds=0.2,
        explained_clock_base_url="http://sla-engine.test",
    )
    app = create_app(settings, now=clock)
    engine = create_engine(stack.database_urls["reporting"], pool_size=2)
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, enable_idempotence=True, acks="all")
    async with LifespanManager(app, startup_timeout=120, shutdown_timeout=60):
        await consuming_from_the_end(app)
        await producer.start()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://reporting.test", timeout=120) as client:
            yield Reporting(app, client, clock, stack, producer, session_factory(engine))
        await producer.stop()
    await engine.dispose()
