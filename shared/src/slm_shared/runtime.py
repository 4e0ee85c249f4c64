"""The process every service runs: a FastStream Kafka broker, the outbox relay and the background tasks.

`ServiceRuntime` builds the pieces without connecting anything; the FastAPI lifespan (`slm_shared.http_app`)
connects them in order (database schema check, topics, relay, broker) and tears them down in reverse on
SIGTERM: uvicorn stops taking requests, the broker drains in-flight messages and commits their offsets, the
relay finishes its pass. The consumers join their groups once the service serves (`_join_consumer_groups`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.specification import AsyncAPI

from slm_shared import topics
from slm_shared.auth import ApiKeyAuthenticator, FailedAuthentications
from slm_shared.background import Backoff, PeriodicTask, Supervisor
from slm_shared.consumer import BatchHandler, ConsumerPipeline, RawRecords, keep_raw_bytes
from slm_shared.consumer_lag import ConsumerLagMonitor
from slm_shared.db import create_engine, ensure_migrated, session_factory
from slm_shared.http_app import build_http_app
from slm_shared.logging import configure_logging
from slm_shared.outbox import OutboxRelay, asyncpg_dsn
from slm_shared.set_aside import SqlSetAside
from slm_shared.tracing import configure_tracing

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence

    from aiokafka.abc import ConsumerRebalanceListener
    from fastapi import APIRouter, FastAPI
    from opentelemetry.sdk.trace import TracerProvider

    from slm_shared.request_guard import BodyLimits
    from slm_shared.settings import ServiceSettings

log = logging.getLogger(__name__)

READY_PROBE_SECONDS = 3.0  # Kubernetes probes time out after 1-10 s: answer within that


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
            api_key_table,
            self.sessions,
            FailedAuthentications(settings.auth_failure_burst, settings.auth_failure_per_minute),
        )
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

    def consume(
        self,
        router: KafkaRouter,
        *topic_names: str,
        handle: BatchHandler,
        title: str,
        description: str,
        group_id: str | None = None,
        max_records: int | None = None,
        offset_reset: Literal["earliest", "latest"] = "earliest",
        listener: ConsumerRebalanceListener | None = None,
    ) -> ConsumerPipeline:
        """Subscribe `handle` to `topic_names` on `router` through the consumer pipeline, the one way every
        service consumes: batches of raw records (the pipeline parses, retries, splits and sets aside), offsets
        committed only after the handler's transaction (`NACK_ON_ERROR`), a static member id per subscriber.
        `title` names the subscriber in AsyncAPI and in its member id."""
        pipeline = self.pipeline(handle, group_id)

        @router.subscriber(
            *topic_names,
            group_id=pipeline.group,
            batch=True,
            auto_offset_reset=offset_reset,
            max_records=max_records,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            listener=listener,
            decoder=keep_raw_bytes,
            title=title,
            description=description,
            group_instance_id=self.group_instance_id(title),
        )
        async def on_records(raw: RawRecords) -> None:
            await pipeline(raw)

        return pipeline

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

    def add_background(
        self, run: Callable[[], Coroutine[Any, Any, None]], stop: Callable[[], Awaitable[None]], name: str | None = None
    ) -> None:
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
                    log.warning(
                        "a consumer of %s could not join its group (%r); trying again",
                        getattr(subscriber, "topic_names", "?"),
                        outcome,
                    )
                    with contextlib.suppress(Exception):  # release its half-started client before the retry
                        await subscriber.stop()
            self.consumers_failing = bool(failed)
            pending = failed
            if failed:
                await asyncio.sleep(backoff.next_delay())
        for publisher in self.broker.publishers:
            await publisher.start()
        self.broker.running = True
        log.info(
            "%s: every consumer group joined, %.2f s after it began serving", self.service, time.monotonic() - began
        )

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
        checks = (
            {"postgres": False}
            if self.api_only
            else {
                "postgres": False,
                "kafka": False,
                "outbox_relay": self.relay.healthy,
                "background": not self.supervisor.restarting,
                "consumers": not self.consumers_failing,
            }
        )
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

    def http_app(
        self,
        *,
        title: str,
        routers: Iterable[APIRouter],
        body_limits: BodyLimits | None = None,
        public_paths: Iterable[str] = (),
    ) -> FastAPI:
        """This process's HTTP app (`slm_shared.http_app.build_http_app`), its lifespan starting and stopping it."""
        return build_http_app(self, title=title, routers=routers, body_limits=body_limits, public_paths=public_paths)
