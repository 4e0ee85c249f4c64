"""Reporting's composition root."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from faststream import AckPolicy
from faststream.kafka import KafkaRouter

from reporting import tables
from reporting.api import report_router
from reporting.handlers import ClockOutcomes
from reporting.settings import ReportingSettings
from slm_shared import topics
from slm_shared.runtime import RawRecords, ServiceRuntime, keep_raw_bytes, process_records, subscribe_api_keys

SERVICE = "reporting"
ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def clock_router(runtime: ServiceRuntime, outcomes: ClockOutcomes) -> KafkaRouter:
    router = KafkaRouter()

    @router.subscriber(
        topics.CLOCKS, group_id=runtime.group_id, batch=True, auto_offset_reset="earliest",
        max_records=runtime.settings.kafka.max_batch_records, ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=keep_raw_bytes, title="clock-transitions", description="sla.clock.v1 from the sla-engine",
    )
    async def on_clock_transitions(raw: RawRecords) -> None:
        await process_records(raw, outcomes.on_clock_record)

    return router


def create_app(settings: ReportingSettings) -> FastAPI:
    runtime = ServiceRuntime(
        service=SERVICE, settings=settings, alembic_ini=ALEMBIC_INI, api_key_table=tables.api_keys,
        topics=topics.ALL_TOPICS,
    )
    runtime.broker.include_router(clock_router(runtime, ClockOutcomes(runtime.sessions)))
    runtime.broker.include_router(subscribe_api_keys(runtime, tables.api_keys, tables.inbox))
    return runtime.http_app(title="reporting", routers=[report_router(runtime.sessions)])
