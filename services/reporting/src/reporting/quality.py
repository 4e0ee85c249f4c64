"""Reads behind the service quality targets: the facts of a period (domain.quality.QualityFacts), tenant-wide
with each row's service and customer, so every target picks its own scope in the pure evaluation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from reporting.domain.periods import Period, previous_periods
from reporting.domain.quality import (
    Answer,
    CycleCount,
    OpenTicket,
    QualityFacts,
    QualityResult,
    Reopens,
    Resolutions,
    SloValue,
    evaluate,
)
from reporting.read_side.slos import slo_statuses
from reporting.read_side.sql import Scope, compose, period_edges

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

    from reporting.domain.config import QualityTarget, ReportingConfig

QUALITY_TREND_PERIODS = 2  # with the period itself: the three-period trend of the service review


async def answers(session: AsyncSession, tenant: str, start: datetime, end: datetime) -> list[Answer]:
    """The latest answer per ticket with its event time in the period (counting rule 8)."""
    rows = (
        await session.execute(
            sa.text("""
        SELECT DISTINCT ON (ticket_id) ticket_id, service, customer, score, scale, answered_at, comment
        FROM feedback WHERE tenant_id = :tenant AND answered_at >= :start AND answered_at < :end
        ORDER BY ticket_id, answered_at DESC, event_id DESC"""),
            {"tenant": tenant, "start": start, "end": end},
        )
    ).all()
    return [
        Answer(r.ticket_id, r.service, r.customer, int(r.score), int(r.scale), r.answered_at, r.comment) for r in rows
    ]


# domain.quality.first_contact on each resolution's timeline (ordered by event time, then arrival): no
# `reopened` before the resolution and no `customer_replied` after an `agent_replied`.
FIRST_CONTACT_SQL = """NOT EXISTS (
    SELECT 1 FROM ticket_events e
    WHERE e.tenant_id = tr.tenant_id AND e.ticket_id = tr.ticket_id AND e.event_time <= tr.at
      AND (e.action = 'reopened' OR (e.action = 'customer_replied' AND EXISTS (
          SELECT 1 FROM ticket_events a
          WHERE a.tenant_id = e.tenant_id AND a.ticket_id = e.ticket_id AND a.action = 'agent_replied'
            AND (a.event_time, a.sequence) < (e.event_time, e.sequence)))))"""


# Which facts each KPI is measured on: a report reads only what its targets need.
NEEDS: dict[str, frozenset[str]] = {
    "csat_mean": frozenset({"answers"}),
    "csat_satisfied": frozenset({"answers"}),
    "reopen_rate": frozenset({"resolutions", "reopens"}),
    "first_contact_resolution": frozenset({"resolutions"}),
    "backlog_age_p90": frozenset({"open_at_end"}),
    "breach_rate": frozenset({"cycles"}),
    "sla_attainment": frozenset({"cycles"}),
    "slo_attainment": frozenset({"slos"}),
}
EVERY_FACT = frozenset().union(*NEEDS.values())


async def quality_facts(
    session: AsyncSession,
    tenant: str,
    start: datetime,
    end: datetime,
    satisfied_ratio: float,
    needs: frozenset[str] = EVERY_FACT,
) -> QualityFacts:
    """Counts per service and customer, aggregated in SQL (a month of a million cycles is a few hundred rows);
    survey answers one by one (the complaint log needs them), open tickets one by one (the p90 of their ages).
    Facts not in `needs` are left empty."""
    params: dict[str, Any] = {"tenant": tenant, "start": start, "end": end}
    empty: list[Any] = []
    resolutions = (
        empty
        if "resolutions" not in needs
        else (
            await session.execute(
                sa.text(
                    compose(
                        """
        SELECT tr.service, tr.customer, count(*) AS resolved, count(*) FILTER (WHERE $first_contact) AS first
        FROM ticket_transitions tr
        WHERE tr.tenant_id = :tenant AND tr.kind = 'resolved' AND tr.at >= :start AND tr.at < :end
        GROUP BY tr.service, tr.customer""",
                        first_contact=FIRST_CONTACT_SQL,
                    )
                ),
                params,
            )
        ).all()
    )
    reopens = (
        empty
        if "reopens" not in needs
        else (
            await session.execute(
                sa.text("""
        SELECT service, customer, count(*) AS reopened FROM ticket_transitions
        WHERE tenant_id = :tenant AND kind = 'reopened' AND at >= :start AND at < :end
        GROUP BY service, customer"""),
                params,
            )
        ).all()
    )
    # Open at the end: only a ticket still open now, or changed since the end, can have been open then.
    open_at_end = (
        empty
        if "open_at_end" not in needs
        else (
            await session.execute(
                sa.text("""
        SELECT f.ticket_id, f.service, f.customer, f.created_at FROM ticket_facts f
        WHERE f.tenant_id = :tenant AND f.created_at < :end
          AND (f.status NOT IN ('resolved', 'closed', 'cancelled') OR f.last_event_time >= :end)
          AND (SELECT sum(t.open_delta) FROM ticket_transitions t
               WHERE t.tenant_id = f.tenant_id AND t.ticket_id = f.ticket_id AND t.at < :end) > 0"""),
                params,
            )
        ).all()
    )
    first_day, end_day, edges, edge_params = period_edges(start, end, "stopped_at")
    cycles = (
        empty
        if "cycles" not in needs
        else (
            await session.execute(
                sa.text(
                    compose(
                        """
        SELECT service, customer, agreement, metric, sum(met)::bigint AS met, sum(breached)::bigint AS breached
        FROM (SELECT service, customer, agreement, metric, met, breached FROM clock_daily
              WHERE tenant_id = :tenant AND day >= :first_day AND day < :end_day
              UNION ALL
              SELECT service, customer, agreement, metric, (state = 'met')::int, (state = 'breached')::int
              FROM clock_outcomes WHERE tenant_id = :tenant AND state IN ('met', 'breached') AND $edges) counted
        GROUP BY service, customer, agreement, metric""",
                        edges=edges,
                    )
                ),
                {**params, "first_day": first_day, "end_day": end_day, **edge_params},
            )
        ).all()
    )
    slos = await slo_statuses(session, Scope(tenant), start, end) if "slos" in needs else []
    return QualityFacts(
        end=end,
        satisfied_ratio=satisfied_ratio,
        start=start,
        answers=await answers(session, tenant, start, end) if "answers" in needs else [],
        resolutions=[Resolutions(r.service, r.customer, int(r.resolved), int(r.first)) for r in resolutions],
        reopens=[Reopens(r.service, r.customer, int(r.reopened)) for r in reopens],
        open_at_end=[OpenTicket(r.ticket_id, r.service, r.customer, r.created_at) for r in open_at_end],
        cycles=[CycleCount(r.service, r.customer, r.agreement, r.metric, int(r.met), int(r.breached)) for r in cycles],
        slos=[SloValue(s.slo_id, s.service, s.sli_value, s.good, s.total) for s in slos],
    )


def targets_in_scope(config: ReportingConfig, service: str | None, customer: str | None) -> list[QualityTarget]:
    """The targets a report of (service, customer) shows: tenant-wide ones and those of its scope; each is
    measured on the scope it declares."""
    return [
        t
        for t in config.quality_targets
        if (service is None or t.service in (None, service)) and (customer is None or t.customer in (None, customer))
    ]


class FactsCache:
    """The facts of each period read once, whoever asks (the review reads them for several sections)."""

    def __init__(
        self, session: AsyncSession, tenant: str, config: ReportingConfig, needs: frozenset[str] = EVERY_FACT
    ) -> None:
        self._session, self._tenant, self._config, self._needs = session, tenant, config, needs
        self._found: dict[tuple[datetime, datetime], QualityFacts] = {}

    async def of(self, period: Period) -> QualityFacts:
        key = (period.start, period.end)
        if key not in self._found:
            self._found[key] = await quality_facts(
                self._session, self._tenant, period.start, period.end, self._config.csat_satisfied_ratio, self._needs
            )
        return self._found[key]


async def quality_results(
    session: AsyncSession,
    tenant: str,
    period: Period,
    config: ReportingConfig,
    service: str | None = None,
    customer: str | None = None,
    cache: FactsCache | None = None,
) -> list[QualityResult]:
    targets = targets_in_scope(config, service, customer)
    if not targets:
        return []
    facts = cache or FactsCache(session, tenant, config, frozenset().union(*(NEEDS[t.kpi] for t in targets)))
    history = [(p.label, await facts.of(p)) for p in previous_periods(period, QUALITY_TREND_PERIODS)]
    return evaluate(targets, await facts.of(period), period.label, history)
