"""Transactional outbox: events are rows written with the business change, then relayed to Kafka.

The relay never tracks "the last id seen": concurrent transactions commit out of id order, so a row with a
smaller id can become visible after a larger one was published. It selects every unpublished row in id order
instead, and a crash between publish and mark re-publishes (at-least-once; consumers dedup).

One relay per database publishes at a time (a transaction-level advisory lock; the other replicas' passes find
it taken and wait for the next wake-up): relays that shared the rows with `SKIP LOCKED` published a key's later
rows while another relay still held its earlier ones, so a partition carried a ticket's events out of order
(the fault suite saw a cycle's `sequence` 3, 4, 5 before 1, 2). The lock ends with the holder's transaction or
connection, so a relay that dies or is cut off frees it for the next. One that stops without dying (a paused
pod, a frozen event loop, a partition the TCP stack has not noticed) would hold it for hours: the relay's session
therefore sets `idle_in_transaction_session_timeout`, and the server ends a pass that stalls past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter, Gauge
from sqlalchemy.dialects.postgresql import JSONB

from slm_shared.background import Backoff, is_unavailable
from slm_shared.events import CloudEvent
from slm_shared.tracing import current_headers

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

NOTIFY_CHANNEL = "outbox"
RELAY_LOCK = 0x6F7574626F78  # pg_advisory_xact_lock key ("outbox"): one publishing relay per database
log = logging.getLogger(__name__)

OUTBOX_PUBLISHED = Counter("slm_outbox_published_total", "Outbox rows published to Kafka", ["topic"])
OUTBOX_BACKLOG = Gauge("slm_outbox_backlog", "Unpublished outbox rows at the last relay pass")
OUTBOX_OLDEST_AGE = Gauge("slm_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row")


def define_outbox_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "outbox",
        metadata,
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("headers", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Index("outbox_unpublished", "id", postgresql_where=sa.text("published_at IS NULL")),
    )


@dataclass(frozen=True)
class OutgoingEvent:
    topic: str
    key: str
    event: CloudEvent
    headers: Mapping[str, str] | None = None

    def serialized(self) -> OutgoingRecord:
        """The same outbox row with the event already in its bytes: cheap to pickle (the model is not)."""
        return OutgoingRecord(self.topic, self.key, self.event.to_json_bytes(), self.headers)


@dataclass(frozen=True)
class OutgoingRecord:
    """An event serialized already (`OutgoingEvent.serialized`), e.g. by a worker process."""

    topic: str
    key: str
    payload: bytes
    headers: Mapping[str, str] | None = None


Outgoing = TypeVar("Outgoing", OutgoingEvent, OutgoingRecord, OutgoingEvent | OutgoingRecord)


def traced(events: Iterable[Outgoing]) -> list[Outgoing]:
    """The events with the current span's `traceparent`, unless they carry a trace of their own already."""
    headers = current_headers()
    if not headers:
        return list(events)
    return [
        event
        if event.headers and "traceparent" in event.headers
        else dataclasses.replace(event, headers={**headers, **(event.headers or {})})
        for event in events
    ]


class Outbox:
    """Adds events to the outbox inside the caller's transaction; never commits."""

    def __init__(self, table: sa.Table) -> None:
        self._table = table

    async def add(self, session: AsyncSession, events: Sequence[OutgoingEvent | OutgoingRecord]) -> None:
        if not events:
            return
        await session.execute(
            sa.insert(self._table),
            [
                {
                    "topic": item.topic,
                    "key": item.key,
                    "payload": item.payload if isinstance(item, OutgoingRecord) else item.event.to_json_bytes(),
                    "headers": dict(item.headers or {}),
                }
                for item in traced(events)
            ],
        )
        # Delivered at commit only, so the relay wakes exactly when the rows become visible.
        await session.execute(sa.text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})

    async def add_raw(
        self, session: AsyncSession, topic: str, key: str, payload: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        """Add a record whose value is published byte for byte (a dead letter keeps the bytes as received)."""
        await session.execute(
            sa.insert(self._table).values(
                topic=topic, key=key, payload=payload, headers={**current_headers(), **(headers or {})}
            )
        )
        await session.execute(sa.text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


class OutboxRelay:
    """Publishes unpublished outbox rows with an idempotent producer, then marks them published."""

    def __init__(
        self,
        *,
        dsn: str,
        producer_options: Mapping[str, Any],
        batch_size: int = 500,
        poll_seconds: float = 0.5,
        retention_seconds: float = 3600.0,
        stalled_pass_seconds: float = 60.0,
    ) -> None:
        self._dsn = dsn
        # Above the producer's own delivery timeout (aiokafka's request_timeout_ms, 40 s): a pass waiting for a
        # slow broker is ended by the producer, not by the server.
        self._session_settings = {"idle_in_transaction_session_timeout": str(round(stalled_pass_seconds * 1000))}
        self._producer_options = dict(producer_options)
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._retention_seconds = retention_seconds
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._producer: AIOKafkaProducer | None = None
        self._listener: asyncpg.Connection | None = None
        self._last_purge = 0.0
        self.healthy = False

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(enable_idempotence=True, acks="all", linger_ms=2, **self._producer_options)
        await self._producer.start()
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Finish the pass in flight, so rows already sent are marked, then close."""
        self._stopping.set()
        self._wakeup.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._producer is not None:
            await self._producer.stop()

    @property
    def alive(self) -> bool:
        """False only if the relay's task ended while the service runs (a liveness failure)."""
        return self._task is None or not self._task.done() or self._stopping.is_set()

    def _on_notify(self, *_: object) -> None:
        self._wakeup.set()

    async def _connect(self) -> asyncpg.Connection:
        """The working connection, plus a LISTEN connection to wake up on commits (both fresh)."""
        await self._close_listener()
        connection = await asyncpg.connect(self._dsn, server_settings=self._session_settings)
        try:
            self._listener = await asyncpg.connect(self._dsn)
            await self._listener.add_listener(NOTIFY_CHANNEL, self._on_notify)
        except BaseException:
            await _close_quietly(connection)
            raise
        return connection

    async def _close_listener(self) -> None:
        if self._listener is not None:
            await _close_quietly(self._listener)
            self._listener = None

    async def _run(self) -> None:
        """Relay until stopped. A pass that fails (database or broker away) closes the connections and
        tries again after a backoff pause, reconnecting and re-LISTENing; nothing but `stop` ends the loop."""
        connection: asyncpg.Connection | None = None
        backoff = Backoff()
        try:
            while not self._stopping.is_set():
                try:
                    if connection is None or connection.is_closed() or self._listener_lost():
                        if connection is not None:
                            await _close_quietly(connection)
                        connection = None
                        connection = await self._connect()
                    published = await self.relay_once(connection)
                    self.healthy = True
                    backoff.reset()
                except Exception as error:  # a broker or database fault must not end the relay
                    self.healthy = False
                    log.warning("outbox relay pass failed: %r", error)
                    if connection is not None and (connection.is_closed() or is_unavailable(error)):
                        await _close_quietly(connection)
                        connection = None
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), backoff.next_delay())
                    continue
                if published < self._batch_size:
                    self._wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), self._poll_seconds)
        finally:
            if connection is not None:
                await _close_quietly(connection)
            await self._close_listener()

    def _listener_lost(self) -> bool:
        return self._listener is None or self._listener.is_closed()

    async def relay_once(self, connection: asyncpg.Connection) -> int:
        """One pass: lock a batch, publish it, await every ack, mark it; returns rows published."""
        assert self._producer is not None
        async with connection.transaction():
            if not await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK):
                return 0  # another replica is publishing: its rows first, in order
            rows = await connection.fetch(
                "SELECT id, topic, key, payload, headers, created_at FROM outbox "
                "WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch_size,
            )
            if rows:
                OUTBOX_OLDEST_AGE.set(max(0.0, time.time() - rows[0]["created_at"].timestamp()))
                futures = []
                for row in rows:
                    headers = [(k, v.encode()) for k, v in json.loads(row["headers"]).items()]
                    futures.append(
                        await self._producer.send(
                            row["topic"], value=row["payload"], key=row["key"].encode(), headers=headers
                        )
                    )
                await asyncio.gather(*futures)
                await connection.execute(
                    "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                    [row["id"] for row in rows],
                )
                for row in rows:
                    OUTBOX_PUBLISHED.labels(row["topic"]).inc()
            else:
                OUTBOX_OLDEST_AGE.set(0)
        if len(rows) < self._batch_size:
            OUTBOX_BACKLOG.set(0)
        else:
            OUTBOX_BACKLOG.set(await connection.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
        await self._purge(connection)
        return len(rows)

    async def _purge(self, connection: asyncpg.Connection) -> None:
        """Published rows are kept a while for inspection, then deleted."""
        now = time.monotonic()
        if now - self._last_purge < 60:
            return
        self._last_purge = now
        await connection.execute(
            "DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)",
            self._retention_seconds,
        )


async def _close_quietly(connection: asyncpg.Connection) -> None:
    """Close a connection whose server may be gone: a dead socket is terminated, not awaited."""
    try:
        await asyncio.wait_for(connection.close(), 2.0)
    except Exception:  # already broken: nothing left to release but the socket
        connection.terminate()
