"""The process every service runs: FastAPI for HTTP, a FastStream Kafka broker, and the outbox relay.

`ServiceRuntime` builds the pieces without connecting anything; the FastAPI lifespan connects them in order
(database schema check, topics, relay, broker) and tears them down in reverse on SIGTERM: uvicorn stops
taking requests, the broker drains in-flight messages and commits their offsets, the relay finishes its pass.
The consumers join their groups once the service serves (`_join_consumer_groups`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import sqlalchemy as sa
import sqlalchemy.exc
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.structs import ConsumerRecord
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from slm_shared import request_guard, topics
from slm_shared.auth import ApiKeyAuthenticator, FailedAuthentications, current_tenant, store_key, tenant_with
from slm_shared.background import BACKGROUND_FAILURES, Backoff, Supervisor, is_unavailable
from slm_shared.consumer import BatchHandler, ConsumerPipeline, RawRecords, keep_raw_bytes, parse_batch
from slm_shared.consumer_lag import ConsumerLagMonitor
from slm_shared.db import DatabaseNotMigrated, create_engine, ensure_migrated, session_factory
from slm_shared.events import API_KEY_EVENT, ApiKeyData
from slm_shared.inbox import Inbox
from slm_shared.logging import configure_logging
from slm_shared.outbox import OutboxRelay, asyncpg_dsn
from slm_shared.request_guard import BodyLimits, unavailable_response
from slm_shared.set_aside import SqlSetAside, set_aside_router
from slm_shared.settings import ServiceSettings
from slm_shared.signing import AnnouncementVerifier
from slm_shared.tracing import (
    configure_tracing,
    context_from_headers,
    tracer,
)

log = logging.getLogger(__name__)

Tenant = Annotated[str, Depends(current_tenant)]  # any valid key; routes name a scope with the aliases below
IngestTenant = Annotated[str, Depends(tenant_with("ingest"))]
ReadTenant = Annotated[str, Depends(tenant_with("read"))]
ConfigTenant = Annotated[str, Depends(tenant_with("config"))]
AdminTenant = Annotated[str, Depends(tenant_with("admin"))]
KEY_ANNOUNCEMENTS = Counter("slm_key_announcements_total", "API key announcements consumed, by outcome "
                            "(stored, or rejected: unsigned or with a signature no public key verifies)",
                            ["outcome"])
READY_PROBE_SECONDS = 3.0  # Kubernetes probes time out after 1-10 s: answer within that
OPERATIONS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


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
                BACKGROUND_FAILURES.labels(self._name).inc()
                log.warning("%s failed: %r", self._name, error, exc_info=not is_unavailable(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)

    async def stop(self) -> None:
        self._stopping.set()


def process_age_seconds() -> float | None:
    """Seconds since this process was started (Linux `/proc`); None where that cannot be read."""
    try:
        started_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime - started_ticks / os.sysconf("SC_CLK_TCK"))


class StartupClock:
    """Where a service's start-up time goes, phase by phase: logged once when it is up (`summary`), and read
    by bench/recovery. Its first phase is the interpreter and the imports, from the process's own start."""

    def __init__(self) -> None:
        before = process_age_seconds()
        self.phases: dict[str, float] = {} if before is None else {"interpreter and imports": before}
        self._mark = time.monotonic()

    def lap(self, phase: str) -> None:
        """The time since the previous lap is `phase`'s."""
        now = time.monotonic()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self._mark
        self._mark = now

    def summary(self) -> str:
        total = sum(self.phases.values())
        return f"{total:.2f} s (" + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.phases.items()) + ")"


class ServiceRuntime:
    """Holds the engine, broker, relay and authenticator of one service; connects nothing until started."""

    def __init__(
        self,
        *,
        service: str,
        settings: ServiceSettings,
        alembic_ini: Path,
        api_key_table: sa.Table,
        set_aside_table: sa.Table,
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
        self.authenticator = ApiKeyAuthenticator(
            api_key_table, self.sessions,
            FailedAuthentications(settings.auth_failure_burst, settings.auth_failure_per_minute))
        self.set_aside_table = set_aside_table
        self.set_aside = SqlSetAside(set_aside_table, self.sessions)
        self.background: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = []
        self.supervisor = Supervisor()
        self._stop_hooks: list[Callable[[], Awaitable[None]]] = []
        self._tracer_provider: TracerProvider | None = None
        self.startup = StartupClock()
        self._joining: asyncio.Task[None] | None = None
        self.consumers_failing = False  # a subscriber's start failed and is being retried
        # Role `api`: the HTTP API alone; the consumers, loops and relay run in the deployment of role `all`.
        self.api_only = settings.role == "api"

    @property
    def group_id(self) -> str:
        return self.settings.kafka.group_id or self.service

    def pipeline(self, handle: BatchHandler, group_id: str | None = None) -> ConsumerPipeline:
        """The consumer pipeline (retry, split, set aside) around `handle`, for a subscriber of `group_id`."""
        return ConsumerPipeline(group_id or self.group_id, handle, self.set_aside)

    def group_instance_id(self, subscriber: str) -> str | None:
        """A subscriber's static membership id when `kafka.group_instance_id` is set: a member SIGKILLed and
        started again rejoins as itself, without waiting for its old session to expire."""
        instance = self.settings.kafka.group_instance_id
        return f"{instance}-{subscriber}" if instance else None

    def consumer_groups(self) -> dict[str, list[str]]:
        """Each consumer group this service's subscribers join, with their topics."""
        groups: dict[str, list[str]] = {}
        for subscriber in self.broker.subscribers:
            group_id = getattr(subscriber, "group_id", None)
            if group_id:
                groups.setdefault(group_id, []).extend(getattr(subscriber, "topic_names", ()))
        return groups

    def add_background(self, run: Callable[[], Coroutine[Any, Any, None]], stop: Callable[[], Awaitable[None]],
                       name: str | None = None) -> None:
        """A long-running task (e.g. the timer wheel) started after the broker and stopped before it.

        Supervised: if `run` raises or returns while the service runs, the service is unready until it has
        been started again after a backoff pause (counted in `slm_background_failures_total`)."""
        self.background.append((name or str(getattr(run, "__qualname__", None) or repr(run)), run))
        self._stop_hooks.append(stop)

    def add_periodic(self, name: str, interval_seconds: float, work: Callable[[], Awaitable[object]]) -> None:
        """`work` every interval, as a background task (see `PeriodicTask`)."""
        task = PeriodicTask(name, interval_seconds, work)
        self.add_background(task.run, task.stop, name)

    def alive(self) -> bool:
        """Liveness: every supervisor and the relay still run (they end only on a bug worth a restart)."""
        return self.api_only or (self.relay.alive and self.supervisor.alive())

    async def preflight(self) -> None:
        """The schema check on a short-lived engine (the service's own pool belongs to uvicorn's loop)."""
        self.startup.lap("composition")
        engine = create_engine(self.settings.database_url.get_secret_value(), pool_size=1)
        try:
            await ensure_migrated(engine, self.alembic_ini, self.service)
        finally:
            await engine.dispose()
        self.startup.lap("schema check")

    async def start(self) -> None:
        clock = self.startup
        clock.lap("web server")
        configure_logging(self.service, self.settings.log_level)
        self._tracer_provider = configure_tracing(self.service, self.settings.tracing)
        clock.lap("logging and tracing")
        await ensure_migrated(self.engine, self.alembic_ini, self.service)
        clock.lap("schema check")
        if self.api_only:
            log.info("%s started (role api: HTTP only) in %s", self.service, clock.summary())
            return
        if self.settings.create_topics:
            await self.ensure_topics()
            clock.lap("topics")
        await self.relay.start()
        clock.lap("outbox relay")
        await self.broker.connect()  # the broker answers (or the start fails, as when it is down)
        clock.lap("broker connected")
        self._joining = asyncio.create_task(self._join_consumer_groups(), name="joining consumer groups")
        # The groups are known once every router is included, so the lag task is added here, not in __init__.
        lag = ConsumerLagMonitor(self.settings.kafka.client_options(), self.consumer_groups(), self.service)
        self.add_periodic("measuring consumer lag", self.settings.consumer_lag_interval_seconds, lag.measure)
        self.supervisor.start(self.background)
        clock.lap("background tasks")
        log.info("%s started in %s", self.service, clock.summary())

    async def _join_consumer_groups(self) -> None:
        """Every subscriber joins its consumer group, all at once, while the service already serves.

        Not before the service is ready: a join waits for the group's other members to rejoin and, after a
        crash, for the dead member's session to end (up to the session timeout), and nothing HTTP serves
        needs it (DESIGN: ready = Kafka and PostgreSQL reachable); records wait in Kafka meanwhile. Not one
        after another either, as FastStream's `broker.start` does: the waits would add up. A subscriber whose
        start fails is stopped and started again after a pause; `/readyz` says `consumers: false` meanwhile."""
        began = time.monotonic()
        backoff = Backoff(0.5, 10.0)
        pending = list(self.broker.subscribers)
        while pending:
            outcomes = await asyncio.gather(*(subscriber.start() for subscriber in pending), return_exceptions=True)
            failed = []
            for subscriber, outcome in zip(pending, outcomes, strict=True):
                if isinstance(outcome, asyncio.CancelledError):
                    raise outcome
                if isinstance(outcome, BaseException):
                    failed.append(subscriber)
                    log.warning("a consumer of %s could not join its group (%r); trying again",
                                getattr(subscriber, "topic_names", "?"), outcome)
                    with contextlib.suppress(Exception):  # release its half-started client before the retry
                        await subscriber.stop()
            self.consumers_failing = bool(failed)
            pending = failed
            if failed:
                await asyncio.sleep(backoff.next_delay())
        for publisher in self.broker.publishers:
            await publisher.start()
        self.broker.running = True
        log.info("%s: every consumer group joined, %.2f s after it began serving", self.service,
                 time.monotonic() - began)

    async def stop(self) -> None:
        if not self.api_only:  # role api started none of the Kafka side
            await self._stop_consuming()
        await self.engine.dispose()
        log.info("%s stopped", self.service)
        if self._tracer_provider is not None:
            await asyncio.to_thread(self._tracer_provider.shutdown)  # flushes the spans still queued

    async def _stop_consuming(self) -> None:
        """The subscribers, background tasks, broker and relay, in that order."""
        if self._joining is not None and not self._joining.done():
            self._joining.cancel()  # a SIGTERM while joining: the subscribers started so far are stopped below
            with contextlib.suppress(asyncio.CancelledError):
                await self._joining
        self.supervisor.stopping()
        for hook in self._stop_hooks:
            await hook()
        await self.supervisor.wait()
        await self.broker.stop()
        await self.relay.stop()

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
                    topic_configs={"cleanup.policy": "compact"} if topic in topics.COMPACTED_TOPICS else None,
                )
                for topic in self.topics
                if topic not in existing
            ]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):  # another replica created it first
                    await admin.create_topics(missing)
        finally:
            await admin.close()

    async def _postgres_answers(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))

    async def ready(self) -> dict[str, bool]:
        """Every dependency's check; role `api` needs only PostgreSQL (keys, timelines and reports are there)."""
        checks = {"postgres": False} if self.api_only else {
            "postgres": False, "kafka": False, "outbox_relay": self.relay.healthy,
            "background": not self.supervisor.restarting, "consumers": not self.consumers_failing}
        try:
            # Bounded: a call that hangs (half-open connection after a failover) must read as not ready, not stall.
            await asyncio.wait_for(self._postgres_answers(), timeout=READY_PROBE_SECONDS)
            checks["postgres"] = True
        except Exception as error:  # readiness reports, never raises
            log.warning("readiness: postgres unreachable: %s", error)
        if self.api_only:
            return checks
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
        for unavailable in OUTAGE_ERRORS:
            app.add_exception_handler(unavailable, answer_outage)
        app.include_router(self._operations_router(title))
        app.include_router(set_aside_router(self.set_aside_table, self.sessions))
        for router in routers:
            app.include_router(router)
        return app

    def _operations_router(self, title: str) -> APIRouter:
        router = APIRouter(tags=["operations"])

        @router.get("/healthz")
        async def healthz() -> JSONResponse:
            alive = self.alive()
            return JSONResponse({"status": "ok" if alive else "a background task is dead"},
                                status_code=200 if alive else 503)

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


# What a request may raise when its database (or broker) is away; `answer_outage` sorts them out.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (sa.exc.DBAPIError, sa.exc.TimeoutError, OSError,
                                              asyncpg.exceptions.PostgresError, asyncpg.exceptions.InterfaceError)


async def answer_outage(request: Request, error: Exception) -> Response:
    """503 with `Retry-After` while a dependency is down (upstream senders retry those); any other error of
    these kinds is a bug of ours and stays a 500."""
    if is_unavailable(error):
        log.warning("%s %s: dependency unavailable: %r", request.method, request.url.path, error)
        return unavailable_response()
    log.error("%s %s failed", request.method, request.url.path, exc_info=error)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


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
        # Behind a TLS-terminating ingress the connection is plain HTTP: the scheme (and the client address)
        # come from X-Forwarded-Proto/-For, believed only from the configured proxies.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
    )


def subscribe_api_keys(runtime: ServiceRuntime, api_key_table: sa.Table, inbox_table: sa.Table) -> KafkaRouter:
    """Keep this service's copy of the API keys intake announces on `itsm.tenants.v1`.

    Idempotent: the inbox rows and the key upserts of a batch share one transaction; a revocation is never
    undone. Only announcements signed by intake count (`slm_shared.signing`): one without a valid signature is
    `ignored`, logged and counted in `slm_key_announcements_total{outcome="rejected"}`. Other event types on
    the topic are `ignored`; a key event that cannot be stored is set aside by the pipeline, so neither stops
    the keys behind it.
    """
    router = KafkaRouter()
    inbox = Inbox(inbox_table, f"{runtime.service}.api-keys")
    verifier = AnnouncementVerifier(runtime.settings.key_announcement_public_keys)
    if not verifier.configured:
        log.warning("no key announcement public key is set: every API key announcement will be ignored")

    async def handle(records: Sequence[ConsumerRecord[bytes, bytes]]) -> list[str]:
        batch = parse_batch(records, {API_KEY_EVENT})
        if not batch.events:
            return batch.outcomes
        async with runtime.sessions() as session, session.begin():
            # Verified before the inbox sees them: a forged record must not take the id of a genuine one to
            # come (`<key_id>-revoked`) and have the genuine announcement dropped as its duplicate.
            verified: dict[int, ApiKeyData] = {}
            for event in batch.events:
                announced = ApiKeyData.model_validate(event.data)
                if verifier.verify(announced):
                    verified[id(event)] = announced
                    continue
                KEY_ANNOUNCEMENTS.labels("rejected").inc()
                log.warning("ignored an API key announcement without a valid signature: event %s, key %s, "
                            "tenant %s", event.id, announced.key_id, announced.tenant_id)
            fresh = await inbox.first_deliveries(session, [e for e in batch.events if id(e) in verified])
            for event in fresh:
                await store_key(session, api_key_table, verified[id(event)], event.time)
                KEY_ANNOUNCEMENTS.labels("stored").inc()
        outcomes = list(batch.mark_duplicates(fresh))
        for event, position in zip(batch.events, batch.positions, strict=True):
            if id(event) not in verified:
                outcomes[position] = "ignored"
        return outcomes

    group_id = f"{runtime.group_id}-api-keys"
    pipeline = runtime.pipeline(handle, group_id)

    @router.subscriber(
        # A group of its own: sharing the main consumers' group made every start (and every restart after a
        # crash) a rebalance of both, the main consumer waiting for this one's join or dead session.
        topics.TENANTS, group_id=group_id, batch=True, auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR, decoder=keep_raw_bytes, title="api-keys",
        description="API key announcements from intake", group_instance_id=runtime.group_instance_id("api-keys"),
    )
    async def on_api_key_events(raw: RawRecords) -> None:
        await pipeline(raw)

    return router
