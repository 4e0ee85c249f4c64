"""The sla-engine's composition root."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from faststream.kafka import KafkaRouter

from sla_engine import tables
from sla_engine.api import body_limits, sla_router
from sla_engine.bundles.cache import BundleCache
from sla_engine.bundles.lifecycle import ConfigService
from sla_engine.clocks.census import ClockCensus
from sla_engine.clocks.handlers import ClockKeeper
from sla_engine.clocks.timeline_cache import TimelineCache
from sla_engine.clocks.timers import TimerLoop
from sla_engine.slos.handlers import SloKeeper
from sla_engine.unit_of_work import engine_units
from slm_shared import topics
from slm_shared.key_announcements import subscribe_api_keys
from slm_shared.rebalances import RebalanceCounter, count_commit_failures
from slm_shared.runtime import ServiceRuntime
from slm_shared.time_source import Now, utc_now

if TYPE_CHECKING:
    from fastapi import FastAPI

    from sla_engine.settings import SlaEngineSettings

SERVICE = "sla-engine"
ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def ticket_router(runtime: ServiceRuntime, keeper: ClockKeeper, settings: SlaEngineSettings) -> KafkaRouter:
    router = KafkaRouter()
    runtime.consume(
        router,
        topics.TICKETS,
        handle=keeper.on_ticket_records,
        title="ticket-snapshots",
        description="itsm.ticket.v1 snapshots from intake",
        max_records=settings.ticket_batch_records,
        listener=RebalanceCounter(runtime.group_id),
    )

    # Documented in AsyncAPI only: the outbox relay, not this publisher, writes to the topic.
    router.publisher(topics.CLOCKS, title="clock-transitions", description="sla.clock.v1 via the outbox")
    router.publisher(
        topics.CALENDARS,
        title="calendars",
        description="sla.calendar.v1, one per calendar of each applied bundle, via the outbox",
    )
    return router


def signal_router(runtime: ServiceRuntime, keeper: SloKeeper) -> KafkaRouter:
    router = KafkaRouter()
    # A consumer group of its own: joining the ticket consumers' group would rebalance (pause) ticket
    # consumption every time a signal consumer joins or leaves.
    group = f"{runtime.group_id}-signals"
    runtime.consume(
        router,
        topics.SIGNALS,
        handle=keeper.on_signal_records,
        group_id=group,
        title="signals",
        description="availability, measurement and maintenance signals",
        max_records=runtime.settings.kafka.max_batch_records,
        listener=RebalanceCounter(group),
    )

    # Documented in AsyncAPI only: the outbox relay, not these publishers, writes to the topics.
    router.publisher(topics.SLO_STATUS, title="slo-status", description="slo.status.v1 via the outbox")
    router.publisher(topics.SLO_ALERTS, title="slo-alerts", description="slo.alert.v1 via the outbox")
    return router


def create_app(settings: SlaEngineSettings, now: Now = utc_now) -> FastAPI:
    runtime = ServiceRuntime(
        service=SERVICE,
        settings=settings,
        alembic_ini=ALEMBIC_INI,
        api_key_table=tables.api_keys,
        set_aside_table=tables.set_aside,
        topics=topics.ALL_TOPICS,
    )
    count_commit_failures(logging.getLogger(f"{SERVICE}.broker"), runtime.group_id)
    # One unit of work per transaction, for every handler, loop and request; decoded timeline rows are kept
    # across them (one cache per database).
    units = engine_units(runtime.sessions, TimelineCache())
    bundles = BundleCache()
    keeper = ClockKeeper(units, bundles, now, processes=settings.reconcile_processes)
    config = ConfigService(units, bundles, keeper)
    timers = TimerLoop(
        keeper,
        units,
        now,
        batch_size=settings.timer_batch_size,
        max_sleep_seconds=settings.timer_max_sleep_seconds,
        per_tenant=settings.reconcile_tickets_per_tenant,
        round_seconds=settings.reconcile_round_seconds,
        rounds_in_flight=settings.reconcile_rounds_in_flight,
    )
    runtime.add_background(timers.run, timers.stop)
    runtime.add_periodic("clock census", settings.clock_census_interval_seconds, ClockCensus(units).count)
    runtime.broker.include_router(ticket_router(runtime, keeper, settings))
    slo_keeper = SloKeeper(
        units,
        bundles,
        now,
        status_interval_seconds=settings.slo_status_interval_seconds,
        sample_retention_days=settings.slo_sample_retention_days,
    )
    runtime.add_periodic("SLO evaluation", settings.slo_evaluation_interval_seconds, slo_keeper.periodic_pass)
    runtime.broker.include_router(signal_router(runtime, slo_keeper))
    runtime.broker.include_router(subscribe_api_keys(runtime, tables.api_keys, tables.inbox))
    return runtime.http_app(
        title="sla-engine",
        routers=[sla_router(units, bundles, config, slo_keeper, now)],
        body_limits=body_limits(settings.max_request_body_bytes),
    )
