"""The process every service runs: FastAPI for HTTP, a FastStream Kafka broker, and the outbox relay.

`ServiceRuntime` builds the pieces without connecting anything; the FastAPI lifespan connects them in order
(database schema check, topics, broker, relay) and tears them down in reverse on SIGTERM: uvicorn stops
taking requests, the broker drains in-flight messages and commits their offsets, the relay finishes its pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.structs import ConsumerRecord
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from faststream import AckPolicy, Context
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from slm_shared import request_guard, topics
from slm_shared.auth import ApiKeyAuthenticator, current_tenant, store_key
from slm_shared.consumer_lag import ConsumerLagMonitor
from slm_shared.db import DatabaseNotMigrated, create_engine, ensure_migrated, session_factory
from slm_shared.events import ApiKeyData, CloudEvent, InvalidEvent, parse_cloudevent
from slm_shared.inbox import Inbox
from slm_shared.logging import configure_logging, log_context
from slm_shared.outbox import OutboxRelay, asyncpg_dsn
from slm_shared.request_guard import BodyLimits
from slm_shared.settings import ServiceSettings
from slm_shared.tracing import (
    KafkaHeaders,
    TraceContext,
    configure_tracing,
    consuming,
    consuming_batch,
    context_from_headers,
    tracer,
)

log = logging.getLogger(__name__)

EVENTS_CONSUMED = Counter("slm_events_consumed_total", "Kafka records consumed", ["topic", "outcome"])
PROCESSING_SECONDS = Histogram(
    "slm_event_processing_seconds", "Time to process one consumed record", ["topic"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

# The raw records of a batch subscriber: key, headers, offsets and the original bytes.
RawRecords = Annotated[Any, Context("message.raw_message")]
Tenant = Annotated[str, Depends(current_tenant)]


def records_of(raw: Any) -> tuple[ConsumerRecord[bytes, bytes], ...]:
    return raw if isinstance(raw, tuple) else (raw,)


async def keep_raw_bytes(message: Any) -> Any:
    """Decoder that hands the handler the bytes as received (DLQ entries keep them unaltered)."""
    return message.body


OPERATIONS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def record_attributes(record: ConsumerRecord[bytes, bytes]) -> dict[str, str | int]:
    return {"messaging.destination.name": record.topic, "messaging.kafka.destination.partition": record.partition,
            "messaging.kafka.message.offset": record.offset}


RecordHandler = Callable[[ConsumerRecord[bytes, bytes]], Awaitable[str]]


async def process_records(raw: Any, handle: RecordHandler) -> None:
    """Run `handle` on each record in order; it owns one transaction per record and returns an outcome.

    An exception (database or broker down) propagates after a pause: the subscriber's NACK_ON_ERROR
    policy rewinds to the batch start, and the inbox skips the records already committed.
    """
    for record in records_of(raw):
        started = time.perf_counter()
        key = record.key.decode(errors="replace") if record.key else None
        try:
            with (log_context(kafka_key=key, topic=record.topic),
                  consuming(f"{record.topic} process", context_from_headers(record.headers),
                            attributes=record_attributes(record))):
                outcome = await handle(record)
        except Exception:
            EVENTS_CONSUMED.labels(record.topic, "error").inc()
            log.exception("processing %s@%s:%s failed; will be redelivered", record.topic, record.partition,
                          record.offset)
            await asyncio.sleep(1.0)
            raise
        EVENTS_CONSUMED.labels(record.topic, outcome).inc()
        PROCESSING_SECONDS.labels(record.topic).observe(time.perf_counter() - started)


@dataclass
class ParsedBatch:
    """A batch's records as events: `outcomes` has one entry per record, `events` the accepted ones in order."""

    events: list[CloudEvent] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # where each event's outcome stands in `outcomes`
    headers: list[KafkaHeaders] = field(default_factory=list)  # every record's, in record order

    def trace_parents(self) -> dict[tuple[str, str, str], TraceContext]:
        """Each event's producer trace context by dedup key (for a span of the effect it caused)."""
        return {event.dedup_key: context_from_headers(self.headers[position])
                for event, position in zip(self.events, self.positions, strict=True)}

    def mark_duplicates(self, fresh: Sequence[CloudEvent]) -> list[str]:
        """Outcomes with every event the inbox did not pass (or already saw in this batch) as `duplicate`."""
        first_time = {event.dedup_key for event in fresh}
        seen: set[tuple[str, str, str]] = set()
        for event, position in zip(self.events, self.positions, strict=True):
            if event.dedup_key not in first_time or event.dedup_key in seen:
                self.outcomes[position] = "duplicate"
            seen.add(event.dedup_key)
        return self.outcomes


def parse_batch(records: Sequence[ConsumerRecord[bytes, bytes]], accepted_types: Collection[str]) -> ParsedBatch:
    """Parse each record: invalid ones are `rejected` (logged), other event types `ignored`, the rest `applied`."""
    batch = ParsedBatch()
    for record in records:
        batch.headers.append(record.headers)
        try:
            event = parse_cloudevent(record.value or b"")
        except InvalidEvent as error:
            log.error("dropping an invalid record from %s: %s", record.topic, error)
            batch.outcomes.append("rejected")
            continue
        if event.type not in accepted_types:
            batch.outcomes.append("ignored")
            continue
        batch.positions.append(len(batch.outcomes))
        batch.events.append(event)
        batch.outcomes.append("applied")
    return batch


BatchHandler = Callable[[Sequence[ConsumerRecord[bytes, bytes]]], Awaitable[Sequence[str]]]


async def process_batch(raw: Any, handle: BatchHandler) -> None:
    """Run `handle` on a whole batch (one transaction for all of it); it returns one outcome per record.

    Same failure rule as `process_records`: an exception rewinds to the batch start after a pause.
    """
    records = records_of(raw)
    started = time.perf_counter()
    try:
        with consuming_batch(f"{records[0].topic} process batch" if records else "process batch",
                             [record.headers for record in records]):
            outcomes = await handle(records)
    except Exception:
        for record in records:
            EVENTS_CONSUMED.labels(record.topic, "error").inc()
        log.exception("processing a batch of %d records failed; it will be redelivered", len(records))
        await asyncio.sleep(1.0)
        raise
    per_record = (time.perf_counter() - started) / max(1, len(records))
    for record, outcome in zip(records, outcomes, strict=True):
        EVENTS_CONSUMED.labels(record.topic, outcome).inc()
        PROCESSING_SECONDS.labels(record.topic).observe(per_record)


class PeriodicTask:
    """Runs `work` every `interval_seconds` until stopped. A failed pass (database or broker away) is logged and
    the next interval retries: a background loop must never end on a fault."""

    def __init__(self, name: str, interval_seconds: float, work: Callable[[], Awaitable[object]]) -> None:
        self._name = name
        self._interval = interval_seconds
        self._work = work
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._work()
            except Exception as error:
                log.warning("%s failed: %s", self._name, error, exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)

    async def stop(self) -> None:
        self._stopping.set()


class ServiceRuntime:
    """Holds the engine, broker, relay and authenticator of one service; connects nothing until started."""

    def __init__(
        self,
        *,
        service: str,
        settings: ServiceSettings,
        alembic_ini: Path,
        api_key_table: sa.Table,
        topics: Sequence[str],
    ) -> None:
        self.service = service
        self.settings = settings
        self.alembic_ini = alembic_ini
        self.topics = tuple(topics)
        database_url = settings.database_url.get_secret_value()
        self.engine = create_engine(database_url)
        self.sessions = session_factory(self.engine)
        self.broker = KafkaBroker(
            settings.kafka.bootstrap_servers,
            security=settings.kafka.broker_security(),
            client_id=service,
            graceful_timeout=settings.drain_timeout_seconds,
            enable_idempotence=True,
            logger=logging.getLogger(f"{service}.broker"),
        )
        self.relay = OutboxRelay(
            dsn=asyncpg_dsn(database_url),
            producer_options=settings.kafka.client_options(),
            batch_size=settings.outbox_batch_size,
            poll_seconds=settings.outbox_poll_seconds,
        )
        self.authenticator = ApiKeyAuthenticator(api_key_table, self.sessions)
        self.background: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_hooks: list[Callable[[], Awaitable[None]]] = []
        self._tracer_provider: TracerProvider | None = None

    @property
    def group_id(self) -> str:
        return self.settings.kafka.group_id or self.service

    def consumer_groups(self) -> dict[str, list[str]]:
        """Each consumer group this service's subscribers join, with their topics."""
        groups: dict[str, list[str]] = {}
        for subscriber in self.broker.subscribers:
            group_id = getattr(subscriber, "group_id", None)
            if group_id:
                groups.setdefault(group_id, []).extend(getattr(subscriber, "topic_names", ()))
        return groups

    def add_background(self, run: Callable[[], Coroutine[Any, Any, None]], stop: Callable[[], Awaitable[None]]) -> None:
        """A long-running task (e.g. the timer wheel) started after the broker and stopped before it."""
        self.background.append(run)
        self._stop_hooks.append(stop)

    def add_periodic(self, name: str, interval_seconds: float, work: Callable[[], Awaitable[object]]) -> None:
        """`work` every interval, as a background task (see `PeriodicTask`)."""
        task = PeriodicTask(name, interval_seconds, work)
        self.add_background(task.run, task.stop)

    async def preflight(self) -> None:
        """The schema check on a short-lived engine (the service's own pool belongs to uvicorn's loop)."""
        engine = create_engine(self.settings.database_url.get_secret_value(), pool_size=1)
        try:
            await ensure_migrated(engine, self.alembic_ini, self.service)
        finally:
            await engine.dispose()

    async def start(self) -> None:
        configure_logging(self.service, self.settings.log_level)
        self._tracer_provider = configure_tracing(self.service, self.settings.tracing)
        await ensure_migrated(self.engine, self.alembic_ini, self.service)
        if self.settings.create_topics:
            await self.ensure_topics()
        await self.relay.start()
        await self.broker.start()
        # The groups are known once every router is included, so the lag task is added here, not in __init__.
        lag = ConsumerLagMonitor(self.settings.kafka.client_options(), self.consumer_groups(), self.service)
        self.add_periodic("measuring consumer lag", self.settings.consumer_lag_interval_seconds, lag.measure)
        self._tasks = [asyncio.create_task(run()) for run in self.background]
        log.info("%s started", self.service)

    async def stop(self) -> None:
        for hook in self._stop_hooks:
            await hook()
        for task in self._tasks:
            await task
        await self.broker.stop()
        await self.relay.stop()
        await self.engine.dispose()
        log.info("%s stopped", self.service)
        if self._tracer_provider is not None:
            await asyncio.to_thread(self._tracer_provider.shutdown)  # flushes the spans still queued

    async def ensure_topics(self) -> None:
        admin = AIOKafkaAdminClient(**self.settings.kafka.client_options(), client_id=f"{self.service}-admin")
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(
                    name=topic,
                    num_partitions=self.settings.kafka.topic_partitions,
                    replication_factor=self.settings.kafka.topic_replication_factor,
                )
                for topic in self.topics
                if topic not in existing
            ]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):  # another replica created it first
                    await admin.create_topics(missing)
        finally:
            await admin.close()

    async def ready(self) -> dict[str, bool]:
        checks = {"postgres": False, "kafka": False, "outbox_relay": self.relay.healthy}
        try:
            async with self.engine.connect() as connection:
                await connection.execute(sa.text("SELECT 1"))
            checks["postgres"] = True
        except Exception as error:  # readiness reports, never raises
            log.warning("readiness: postgres unreachable: %s", error)
        try:
            checks["kafka"] = await self.broker.ping(timeout=2.0)
        except Exception as error:  # readiness reports, never raises
            log.warning("readiness: kafka unreachable: %s", error)
        return checks

    def asyncapi(self, title: str) -> dict[str, Any]:
        document: dict[str, Any] = AsyncAPI(self.broker, title=title, version="1.0.0").to_specification().to_jsonable()
        return document

    def http_app(self, *, title: str, routers: Iterable[APIRouter], body_limits: BodyLimits | None = None,
                 public_paths: Iterable[str] = ()) -> FastAPI:
        """`body_limits` per route (default: `max_request_body_bytes`); `public_paths` take a body without a key."""
        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        app = FastAPI(title=title, version="1.0.0", lifespan=lifespan)
        app.state.authenticator = self.authenticator
        app.state.runtime = self
        request_guard.install(app, limits=body_limits or BodyLimits(self.settings.max_request_body_bytes),
                              authenticator=self.authenticator, public_paths=OPERATIONS_PATHS | set(public_paths))

        @app.middleware("http")
        async def trace_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            """A server span per API request, child of the caller's `traceparent` if it sent one."""
            if request.url.path in OPERATIONS_PATHS:
                return await call_next(request)
            with tracer().start_as_current_span(
                f"{request.method} {request.url.path}", context=context_from_headers(dict(request.headers)),
                kind=SpanKind.SERVER, attributes={"http.request.method": request.method,
                                                  "url.path": request.url.path},
            ) as span:
                response = await call_next(request)
                span.set_attribute("http.response.status_code", response.status_code)
                return response
        app.include_router(self._operations_router(title))
        for router in routers:
            app.include_router(router)
        return app

    def _operations_router(self, title: str) -> APIRouter:
        router = APIRouter(tags=["operations"])

        @router.get("/healthz")
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}

        @router.get("/readyz")
        async def readyz() -> JSONResponse:
            checks = await self.ready()
            return JSONResponse({"ready": all(checks.values()), "checks": checks},
                                status_code=200 if all(checks.values()) else 503)

        @router.get("/metrics")
        async def metrics() -> Response:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

        @router.get("/asyncapi.json")
        async def asyncapi() -> dict[str, Any]:
            return self.asyncapi(title)

        return router


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run the service until SIGTERM/SIGINT; uvicorn then drains HTTP and runs the lifespan shutdown.

    An unmigrated database stops it before anything starts, with one clear line and exit status 2.
    """
    import uvicorn

    runtime: ServiceRuntime = app.state.runtime
    try:
        asyncio.run(runtime.preflight())
    except DatabaseNotMigrated as error:
        print(f"refusing to start: {error}", file=sys.stderr)  # noqa: T201 - before logging is configured
        raise SystemExit(2) from None

    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.drain_timeout_seconds),
    )


def subscribe_api_keys(runtime: ServiceRuntime, api_key_table: sa.Table, inbox_table: sa.Table) -> KafkaRouter:
    """Keep this service's copy of the API keys intake announces on `itsm.tenants.v1`.

    Idempotent: the inbox row and the key upsert share one transaction; a revocation is never undone.
    """
    router = KafkaRouter()
    inbox = Inbox(inbox_table, f"{runtime.service}.api-keys")

    async def handle(record: ConsumerRecord[bytes, bytes]) -> str:
        try:
            event = parse_cloudevent(record.value or b"")
        except InvalidEvent as error:
            log.error("ignoring an invalid API key event: %s", error)
            return "rejected"
        key = ApiKeyData.model_validate(event.data)
        async with runtime.sessions() as session, session.begin():
            if not await inbox.first_delivery(session, event.tenantid, event.source, event.id):
                return "duplicate"
            await store_key(session, api_key_table, key, event.time)
        return "applied"

    @router.subscriber(
        topics.TENANTS, group_id=runtime.group_id, batch=True, auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR, decoder=keep_raw_bytes, title="api-keys",
        description="API key announcements from intake",
    )
    async def on_api_key_events(raw: RawRecords) -> None:
        await process_records(raw, handle)

    return router
