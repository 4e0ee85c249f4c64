"""Service Level Reports and the live dashboard: their inputs read from the read side, the pure assembly."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import Histogram
from pydantic import TypeAdapter

from reporting.domain.assemble import assemble
from reporting.domain.config import PublishScope, ReportingConfig
from reporting.domain.dashboard import DashboardView, dashboard
from reporting.domain.inputs import PeriodOutcomes, ReportInputs
from reporting.domain.model import ServiceLevelReport, TimeStats
from reporting.domain.periods import Period, classify, period_containing, previous_periods
from reporting.i18n import Language, choose_language
from reporting.quality import FactsCache, quality_results
from reporting.read_side import clock_outcomes, data_notes, slos, tickets
from reporting.read_side.calendars import calendars_of
from reporting.read_side.config import load_config, save_config
from reporting.read_side.snapshots import export_snapshot, published_report, published_reports, read_only
from reporting.read_side.sql import Scope

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from slm_shared.time_source import Now

TREND_PERIODS = 6
REPORT_SECONDS = Histogram(
    "slm_report_generation_seconds",
    "Time to build and render a Service Level Report",
    ["kind", "format"],  # kind: live (GET /v1/reports/slr), snapshot (a frozen one rendered), close (frozen)
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DASHBOARD_LIST_LIMIT = 50
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


class ReportService:
    """The tenants' configuration, their reports (live and published) and the dashboard; every read in one
    read-only snapshot transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], now: Now) -> None:
        self._sessions = sessions
        self._now = now

    async def config(self, tenant: str) -> tuple[ReportingConfig, int]:
        async with read_only(self._sessions) as session:
            return await load_config(session, tenant)

    async def save_config(self, tenant: str, config: ReportingConfig, at: datetime) -> int:
        """A new version of the tenant's configuration."""
        async with self._sessions() as session, session.begin():
            return await save_config(session, tenant, config, at)

    async def published(self, tenant: str, limit: int) -> list[dict[str, Any]]:
        """The tenant's published snapshots, newest period first, without their content."""
        async with read_only(self._sessions) as session:
            return await published_reports(session, tenant, limit)

    async def published_report(self, tenant: str, report_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """A published snapshot's content and lineage, exactly as frozen."""
        async with read_only(self._sessions) as session:
            return await published_report(session, tenant, report_id)

    async def language(self, tenant: str, requested: str | None, accept_language: str | None) -> Language:
        """`?lang=`, else Accept-Language, else the tenant's configured language."""
        return choose_language(requested, accept_language, (await self.config(tenant))[0].language)

    async def generate(
        self,
        tenant: str,
        start: datetime,
        end: datetime,
        service: str | None = None,
        customer: str | None = None,
        clocks_limit: int = 1000,
    ) -> ServiceLevelReport:
        # One snapshot of the data for every section, read-only.
        async with read_only(self._sessions) as session:
            config, version = await load_config(session, tenant)
            period = classify(start, end, config.timezone, config.period)
            # The percentiles sort every stopped cycle of the period: the one scan a rollup cannot replace. They
            # run on a second connection, in the very same snapshot.
            snapshot = await export_snapshot(session)
            times = asyncio.create_task(self._times_in(snapshot, Scope(tenant, service, customer), period))
            try:
                return await build_report(
                    session, tenant, period, config, version, service, customer, self._now(), clocks_limit, times=times
                )
            finally:
                if not times.done():
                    times.cancel()

    async def _times_in(self, snapshot: str, scope: Scope, period: Period) -> list[TimeStats]:
        async with read_only(self._sessions, snapshot) as session:
            return await clock_outcomes.time_stats(session, scope, period.start, period.end)

    async def dashboard(self, tenant: str, at: datetime) -> DashboardView:
        """The live dashboard at `at`: the period so far, open and imminent breaches, SLOs, quality targets."""
        async with read_only(self._sessions) as session:
            config, _ = await load_config(session, tenant)
            period = period_containing(at, config.timezone, config.period)
            scope = Scope(tenant)
            breaches = await clock_outcomes.open_breaches(session, scope, at, DASHBOARD_LIST_LIMIT)
            soon = await clock_outcomes.about_to_breach(
                session, scope, at, timedelta(seconds=config.dashboard_horizon_seconds), DASHBOARD_LIST_LIMIT
            )
            running = [(c.calendar, c.policy_version) for c in breaches if c.state == "running"]
            running += [(c.calendar, c.policy_version) for c in soon if c.state == "running"]
            return dashboard(
                tenant,
                at,
                period,
                config,
                await clock_outcomes.outcome_cells(session, scope, period.start, at),
                breaches,
                soon,
                await slos.slo_statuses(session, scope, None, at + timedelta(seconds=1)),
                # The quality targets on the period so far, with the two whole periods before as their trend.
                await quality_results(session, tenant, replace(period, end=max(at, period.start)), config),
                await calendars_of(session, tenant, running),
            )


async def build_report(
    session: AsyncSession,
    tenant: str,
    period: Period,
    config: ReportingConfig,
    config_version: int,
    service: str | None,
    customer: str | None,
    now: datetime,
    clocks_limit: int,
    times: Awaitable[list[TimeStats]] | None = None,
    quality_cache: FactsCache | None = None,
) -> ServiceLevelReport:
    scope = Scope(tenant, service, customer)
    start, end = period.start, period.end
    trend = []
    for past in previous_periods(period, TREND_PERIODS):
        trend.append(
            PeriodOutcomes(
                past.label,
                past.start,
                past.end,
                await clock_outcomes.outcome_cells(session, scope, past.start, past.end),
                await tickets.csat_cells(session, scope, past.start, past.end, config.csat_satisfied_ratio),
            )
        )
    csat = await tickets.csat_cells(session, scope, start, end, config.csat_satisfied_ratio)
    sla_breached, links = await clock_outcomes.underpinning(session, scope, start, end)
    ranges, recalculations = await data_notes.event_ranges(session, tenant, start, end)
    clocks, truncated = await clock_outcomes.clock_rows(session, scope, start, end, clocks_limit)
    open_breaches = await clock_outcomes.open_breaches(session, scope, end)
    running = [(c.calendar, c.policy_version) for c in clocks if c.state == "running"]
    running += [(c.calendar, c.policy_version) for c in open_breaches if c.state == "running"]
    scope_key = PublishScope(service=service, customer=customer).key
    inputs = ReportInputs(
        tenant=tenant,
        service=service,
        customer=customer,
        generated_at=now,
        config_version=config_version,
        cells=await clock_outcomes.outcome_cells(session, scope, start, end),
        trend=trend,
        breached=await clock_outcomes.breached_cycles(session, scope, start, end),
        open_breaches=open_breaches,
        times=await times if times is not None else await clock_outcomes.time_stats(session, scope, start, end),
        volumes=await tickets.volume_cells(session, scope, start, end),
        backlog_at_start=await tickets.backlog_at(session, scope, start),
        backlog_at_end=await tickets.backlog_at(session, scope, end),
        csat=csat,
        answered_tickets=sum(c.answers for c in csat),
        slo_statuses=await slos.slo_statuses(session, scope, start, end),
        alerts=await slos.alert_rows(session, scope, start, end),
        sla_breached_tickets=sla_breached,
        underpinning_links=links,
        event_ranges=ranges,
        recalculations=recalculations,
        recalculated_cycles=await data_notes.recalculated_cycles(session, scope, start, end),
        clocks=clocks,
        clocks_truncated=truncated,
        published=await data_notes.published_snapshots(session, tenant, start, end, scope_key),
        pending_late_events=await data_notes.pending_late_changes(session, tenant, start),
        quality=await quality_results(session, tenant, period, config, service, customer, quality_cache),
        calendars=await calendars_of(session, tenant, running),
    )
    return assemble(inputs, period, config)
