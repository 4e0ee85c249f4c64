"""The service review pack built from the read side (`build_review`, in the caller's snapshot) and the period
labels it is asked by; frozen, approved and served with what changed since by reporting.review_packs.

`{period}` is a label of the tenant's configured period: `2026-10` (monthly) or `2026-W41` (weekly).
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import HTTPException, status
from pydantic import TypeAdapter

from reporting import tables
from reporting.domain.notification_policy import REPORT_PUBLISHED
from reporting.domain.periods import Period, period_containing, previous_periods
from reporting.domain.review import (
    Delivered,
    ImprovementItem,
    ServiceReview,
    assemble_review,
)
from reporting.domain.satisfaction import Handling, complaint_counts, satisfaction
from reporting.quality import QUALITY_TREND_PERIODS, FactsCache, quality_results
from reporting.read_side.clock_outcomes import outcome_cells
from reporting.read_side.sql import Scope
from reporting.reports import build_report
from reporting.review_tables import complaint_handling, improvements

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from reporting.domain.config import ReportingConfig
    from reporting.domain.quality import Answer

REVIEW_ADAPTER: TypeAdapter[ServiceReview] = TypeAdapter(ServiceReview)
MONTH_LABEL = re.compile(r"^(\d{4})-(\d{2})$")
WEEK_LABEL = re.compile(r"^(\d{4})-W(\d{2})$")


def parse_period(label: str, config: ReportingConfig) -> Period:
    """The configured period named `label`; 404 when the label is not one of the tenant's periods."""
    zone = ZoneInfo(config.timezone)
    try:
        if config.period == "monthly" and (month := MONTH_LABEL.match(label)):
            first = date(int(month.group(1)), int(month.group(2)), 1)
        elif config.period == "weekly" and (week := WEEK_LABEL.match(label)):
            first = date.fromisocalendar(int(week.group(1)), int(week.group(2)), 1)
        else:
            raise ValueError(label)
    except ValueError as error:
        example = "2026-10" if config.period == "monthly" else "2026-W41"
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no {config.period} period {label!r}; name one like {example}"
        ) from error
    return period_containing(datetime.combine(first, time(12), tzinfo=zone), config.timezone, config.period)


async def _created(session: AsyncSession, tenant: str, period: Period) -> dict[tuple[str, str], int]:
    rows = (
        await session.execute(
            sa.text("""
        SELECT service, customer, count(*) AS n FROM ticket_transitions
        WHERE tenant_id = :tenant AND kind = 'created' AND at >= :start AND at < :end GROUP BY service, customer"""),
            {"tenant": tenant, "start": period.start, "end": period.end},
        )
    ).all()
    return {(r.service, r.customer): int(r.n) for r in rows}


async def _handling(session: AsyncSession, tenant: str) -> dict[str, Handling]:
    rows = (await session.execute(sa.select(complaint_handling).where(complaint_handling.c.tenant_id == tenant))).all()
    return {r.ticket_id: Handling(r.marked, r.status, r.owner, r.note, r.improvement_id) for r in rows}


async def _improvements(session: AsyncSession, tenant: str, customer: str | None) -> list[ImprovementItem]:
    rows = (await session.execute(sa.select(improvements).where(improvements.c.tenant_id == tenant))).all()
    return [
        ImprovementItem(
            r.improvement_id,
            r.title,
            r.trigger_kind,
            r.trigger_ref,
            r.kpi,
            r.status,
            None,
            r.owner,
            r.due,
            r.target_value,
            r.comparison,
            r.baseline_value,
            r.after_value,
            r.after_period,
            created_at=r.created_at,
            history=r.history,
        )
        for r in rows
        if customer is None or r.kpi.get("customer") in (None, customer)
    ]


def _mine(found: list[Answer], customer: str | None) -> list[Answer]:
    return [a for a in found if customer is None or a.customer == customer]


async def build_review(
    session: AsyncSession,
    tenant: str,
    period: Period,
    config: ReportingConfig,
    config_version: int,
    customer: str | None,
    now: datetime,
) -> ServiceReview:
    scope = Scope(tenant, None, customer)
    cache = FactsCache(session, tenant, config)
    report = await build_report(
        session, tenant, period, config, config_version, None, customer, now, 0, quality_cache=cache
    )
    earlier = previous_periods(period, QUALITY_TREND_PERIODS)
    history = [(p.label, await outcome_cells(session, scope, p.start, p.end)) for p in earlier]
    current = await outcome_cells(session, scope, period.start, period.end)
    facts = await cache.of(period)
    resolved: Counter[tuple[str, str]] = Counter()
    for r in facts.resolutions:
        if customer in (None, r.customer):
            resolved[(r.service, r.customer)] += r.resolved
    past_answers = [(p.label, _mine((await cache.of(p)).answers, customer)) for p in earlier]
    found = satisfaction(
        _mine(facts.answers, customer), resolved, past_answers, await _handling(session, tenant), config, period.label
    )
    return assemble_review(
        report,
        history,
        current,
        await _created(session, tenant, period),
        await quality_results(session, tenant, period, config, None, customer, cache),
        facts,
        found,
        complaint_counts(found.complaints),
        await _improvements(session, tenant, customer),
        config,
        await distribution(session, tenant, [p.report_id for p in report.header.published]),
    )


async def distribution(session: AsyncSession, tenant: str, report_ids: list[str]) -> dict[str, list[Delivered]]:
    """The delivery log's `report.published` notifications of the reports (their ladder key is
    `report/{report_id}/...`, reporting.domain.notifications.ReportFacts)."""
    if not report_ids:
        return {}
    t = tables.notifications
    report_id = sa.func.split_part(t.c.ladder_key, "/", 2)
    rows = (
        await session.execute(
            sa.select(
                report_id.label("report_id"),
                t.c.rule_id,
                t.c.channel,
                t.c.recipients,
                t.c.status,
                t.c.sent_at,
                t.c.attempts,
                t.c.reason,
                t.c.last_error,
            ).where(t.c.tenant_id == tenant, t.c.trigger == REPORT_PUBLISHED, report_id.in_(report_ids))
        )
    ).all()
    found: dict[str, list[Delivered]] = {}
    for row in rows:
        found.setdefault(row.report_id, []).append(
            Delivered(
                row.rule_id,
                row.channel,
                list(row.recipients),
                row.status,
                row.sent_at,
                row.attempts,
                row.reason or row.last_error,
            )
        )
    return found


def review_document(review: ServiceReview) -> dict[str, Any]:
    document: dict[str, Any] = REVIEW_ADAPTER.dump_python(review, mode="json")
    return document
