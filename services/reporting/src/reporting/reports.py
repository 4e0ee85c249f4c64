"""Generating Service Level Reports: configuration, inputs from the read models, the pure assembly."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client import Histogram
from pydantic import TypeAdapter
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from reporting import queries, tables
from reporting.calendars import calendars_of
from reporting.domain.assemble import assemble
from reporting.domain.config import PublishScope, ReportingConfig
from reporting.domain.inputs import PeriodOutcomes, ReportInputs
from reporting.domain.model import ServiceLevelReport, TimeStats
from reporting.domain.periods import Period, classify, previous_periods
from reporting.i18n import Language, choose_language
from reporting.quality import FactsCache, quality_results
from slm_shared.time_source import Now

TREND_PERIODS = 6
REPORT_SECONDS = Histogram(
    "slm_report_generation_seconds", "Time to build and render a Service Level Report",
    ["kind", "format"],  # kind: live (GET /v1/reports/slr), snapshot (a frozen one rendered), close (frozen)
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+-[0-9]+")
REPORT_ADAPTER: TypeAdapter[ServiceLevelReport] = TypeAdapter(ServiceLevelReport)


def report_document(report: ServiceLevelReport) -> dict[str, Any]:
    """The canonical JSON structure (a plain dict of JSON values)."""
    document: dict[str, Any] = REPORT_ADAPTER.dump_python(report, mode="json")
    return document


def report_schema() -> dict[str, Any]:
    schema: dict[str, Any] = REPORT_ADAPTER.json_schema(mode="serialization")
    schema["$id"] = "https://slm.example/schemas/service-level-report-1.json"
    schema["title"] = "Service Level Report"
    return schema


def canonical_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


async def load_config(session: AsyncSession, tenant: str) -> tuple[ReportingConfig, int]:
    row = (await session.execute(sa.select(tables.reporting_config.c.config, tables.reporting_config.c.version)
                                 .where(tables.reporting_config.c.tenant_id == tenant))).first()
    if row is None:
        return ReportingConfig(), 0
    return ReportingConfig.model_validate(row.config), int(row.version)


async def save_config(session: AsyncSession, tenant: str, config: ReportingConfig, at: datetime) -> int:
    """Every change is a new version (the version a report was made with is in its header)."""
    t = tables.reporting_config
    statement = insert(t).values(tenant_id=tenant, version=1, config=config.model_dump(mode="json"), updated_at=at)
    upsert = statement.on_conflict_do_update(
        index_elements=[t.c.tenant_id],
        set_={"version": t.c.version + 1, "config": statement.excluded.config, "updated_at": at},
    ).returning(t.c.version)
    return int((await session.execute(upsert)).scalar_one())


class ReportService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], now: Now) -> None:
        self._sessions = sessions
        self._now = now

    async def config(self, tenant: str) -> tuple[ReportingConfig, int]:
        async with self._sessions() as session:
            return await load_config(session, tenant)

    async def language(self, tenant: str, requested: str | None, accept_language: str | None) -> Language:
        """`?lang=`, else Accept-Language, else the tenant's configured language."""
        return choose_language(requested, accept_language, (await self.config(tenant))[0].language)

    async def generate(self, tenant: str, start: datetime, end: datetime, service: str | None = None,
                       customer: str | None = None, clocks_limit: int = 1000) -> ServiceLevelReport:
        async with self._sessions() as session, session.begin():
            # One snapshot of the data for every section (REPEATABLE READ), read-only.
            await session.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            config, version = await load_config(session, tenant)
            period = classify(start, end, config.timezone, config.period)
            # The percentiles sort every stopped cycle of the period: the one scan a rollup cannot replace. They
            # run on a second connection, in the very same snapshot (as pg_dump's parallel workers do).
            snapshot = str((await session.execute(sa.text("SELECT pg_export_snapshot()"))).scalar_one())
            times = asyncio.create_task(self._times_in(snapshot, queries.Scope(tenant, service, customer), period))
            try:
                return await build_report(session, tenant, period, config, version, service, customer, self._now(),
                                          clocks_limit, times=times)
            finally:
                if not times.done():
                    times.cancel()

    async def _times_in(self, snapshot: str, scope: queries.Scope, period: Period) -> list[TimeStats]:
        if not SNAPSHOT_ID.fullmatch(snapshot):
            raise ValueError(f"unexpected snapshot id {snapshot!r}")
        async with self._sessions() as session, session.begin():
            await session.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            await session.execute(sa.text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
            return await queries.time_stats(session, scope, period.start, period.end)


async def build_report(session: AsyncSession, tenant: str, period: Period, config: ReportingConfig,
                       config_version: int, service: str | None, customer: str | None, now: datetime,
                       clocks_limit: int, times: Awaitable[list[TimeStats]] | None = None,
                       quality_cache: FactsCache | None = None) -> ServiceLevelReport:
    scope = queries.Scope(tenant, service, customer)
    start, end = period.start, period.end
    trend = []
    for past in previous_periods(period, TREND_PERIODS):
        trend.append(PeriodOutcomes(
            past.label, past.start, past.end, await queries.outcome_cells(session, scope, past.start, past.end),
            await queries.csat_cells(session, scope, past.start, past.end, config.csat_satisfied_ratio)))
    csat = await queries.csat_cells(session, scope, start, end, config.csat_satisfied_ratio)
    sla_breached, links = await queries.underpinning(session, scope, start, end)
    ranges, recalculations = await queries.event_ranges(session, tenant, start, end)
    clocks, truncated = await queries.clock_rows(session, scope, start, end, clocks_limit)
    open_breaches = await queries.open_breaches(session, scope, end)
    running = [(c.calendar, c.policy_version) for c in clocks if c.state == "running"]
    running += [(c.calendar, c.policy_version) for c in open_breaches if c.state == "running"]
    scope_key = PublishScope(service=service, customer=customer).key
    inputs = ReportInputs(
        tenant=tenant, service=service, customer=customer, generated_at=now, config_version=config_version,
        cells=await queries.outcome_cells(session, scope, start, end),
        trend=trend,
        breached=await queries.breached_cycles(session, scope, start, end),
        open_breaches=open_breaches,
        times=await times if times is not None else await queries.time_stats(session, scope, start, end),
        volumes=await queries.volume_cells(session, scope, start, end),
        backlog_at_start=await queries.backlog_at(session, scope, start),
        backlog_at_end=await queries.backlog_at(session, scope, end),
        csat=csat,
        answered_tickets=sum(c.answers for c in csat),
        slo_statuses=await queries.slo_statuses(session, scope, start, end),
        alerts=await queries.alert_rows(session, scope, start, end),
        sla_breached_tickets=sla_breached,
        underpinning_links=links,
        event_ranges=ranges,
        recalculations=recalculations,
        recalculated_cycles=await queries.recalculated_cycles(session, scope, start, end),
        clocks=clocks,
        clocks_truncated=truncated,
        published=await queries.published_snapshots(session, tenant, start, end, scope_key),
        pending_late_events=await queries.pending_late_changes(session, tenant, start),
        quality=await quality_results(session, tenant, period, config, service, customer, quality_cache),
        calendars=await calendars_of(session, tenant, running),
    )
    return assemble(inputs, period, config)
