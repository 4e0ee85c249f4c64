"""Reads behind the service quality targets: the facts of a period (domain.quality.QualityFacts), tenant-wide
with each row's service and customer, so every target picks its own scope in the pure evaluation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from reporting import queries
from reporting.domain.config import QualityTarget, ReportingConfig
from reporting.domain.periods import Period, previous_periods
from reporting.domain.quality import (
    Answer,
    CycleCount,
    OpenTicket,
    QualityFacts,
    QualityResult,
    Reopen,
    Resolution,
    SloValue,
    evaluate,
)

QUALITY_TREND_PERIODS = 2  # with the period itself: the three-period trend of the service review


async def answers(session: AsyncSession, tenant: str, start: datetime, end: datetime) -> list[Answer]:
    """The latest answer per ticket with its event time in the period (counting rule 8)."""
    rows = (await session.execute(sa.text("""
        SELECT DISTINCT ON (ticket_id) ticket_id, service, customer, score, scale, answered_at, comment
        FROM feedback WHERE tenant_id = :tenant AND answered_at >= :start AND answered_at < :end
        ORDER BY ticket_id, answered_at DESC, event_id DESC"""), {"tenant": tenant, "start": start, "end": end})).all()
    return [Answer(r.ticket_id, r.service, r.customer, int(r.score), int(r.scale), r.answered_at, r.comment)
            for r in rows]


async def quality_facts(session: AsyncSession, tenant: str, start: datetime, end: datetime,
                        satisfied_ratio: float) -> QualityFacts:
    params: dict[str, Any] = {"tenant": tenant, "start": start, "end": end}
    resolutions = (await session.execute(sa.text("""
        SELECT tr.ticket_id, tr.service, tr.customer, tr.at,
               (SELECT array_agg(e.action ORDER BY e.event_time, e.sequence) FROM ticket_events e
                WHERE e.tenant_id = tr.tenant_id AND e.ticket_id = tr.ticket_id AND e.event_time <= tr.at) AS actions
        FROM ticket_transitions tr
        WHERE tr.tenant_id = :tenant AND tr.kind = 'resolved' AND tr.at >= :start AND tr.at < :end"""),
        params)).all()
    reopens = (await session.execute(sa.text("""
        SELECT ticket_id, service, customer FROM ticket_transitions
        WHERE tenant_id = :tenant AND kind = 'reopened' AND at >= :start AND at < :end"""), params)).all()
    open_at_end = (await session.execute(sa.text("""
        SELECT f.ticket_id, f.service, f.customer, f.created_at FROM ticket_facts f
        JOIN (SELECT ticket_id FROM ticket_transitions WHERE tenant_id = :tenant AND at < :end
              GROUP BY ticket_id HAVING sum(open_delta) > 0) open USING (ticket_id)
        WHERE f.tenant_id = :tenant"""), params)).all()
    cycles = (await session.execute(sa.text("""
        SELECT service, customer, agreement, metric, count(*) FILTER (WHERE state = 'met') AS met,
               count(*) FILTER (WHERE state = 'breached') AS breached
        FROM clock_outcomes WHERE tenant_id = :tenant AND state IN ('met', 'breached')
          AND stopped_at >= :start AND stopped_at < :end
        GROUP BY service, customer, agreement, metric"""), params)).all()
    slos = await queries.slo_statuses(session, queries.Scope(tenant), start, end)
    return QualityFacts(
        end=end, satisfied_ratio=satisfied_ratio, start=start,
        answers=await answers(session, tenant, start, end),
        resolutions=[Resolution(r.ticket_id, r.service, r.customer, r.at, tuple(r.actions or ())) for r in resolutions],
        reopens=[Reopen(r.ticket_id, r.service, r.customer) for r in reopens],
        open_at_end=[OpenTicket(r.ticket_id, r.service, r.customer, r.created_at) for r in open_at_end],
        cycles=[CycleCount(r.service, r.customer, r.agreement, r.metric, int(r.met), int(r.breached)) for r in cycles],
        slos=[SloValue(s.slo_id, s.service, s.sli_value, s.good, s.total) for s in slos],
    )


def targets_in_scope(config: ReportingConfig, service: str | None, customer: str | None) -> list[QualityTarget]:
    """The targets a report of (service, customer) shows: tenant-wide ones and those of its scope; each is
    measured on the scope it declares."""
    return [t for t in config.quality_targets if (service is None or t.service in (None, service))
            and (customer is None or t.customer in (None, customer))]


async def quality_results(session: AsyncSession, tenant: str, period: Period, config: ReportingConfig,
                          service: str | None = None, customer: str | None = None) -> list[QualityResult]:
    targets = targets_in_scope(config, service, customer)
    if not targets:
        return []
    history = [(p.label, await quality_facts(session, tenant, p.start, p.end, config.csat_satisfied_ratio))
               for p in previous_periods(period, QUALITY_TREND_PERIODS)]
    facts = await quality_facts(session, tenant, period.start, period.end, config.csat_satisfied_ratio)
    return evaluate(targets, facts, period.label, history)
