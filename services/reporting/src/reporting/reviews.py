"""The service review pack: built from the read side, frozen by the period close, approved, and served with
what changed since (reporting.review_api serves it over HTTP).

`{period}` is a label of the tenant's configured period: `2026-10` (monthly) or `2026-W41` (weekly).

Closing a period freezes its review (`SqlReviewRepository.freeze`, the unit of work's `reviews`, called by the
period close in its transaction): the pack
of the whole tenant and of each customer the tenant publishes reports for, stored with the SHA-256 of its
canonical JSON. A later read of the closed period serves that frozen pack (`frozen`: when, which hash); what
changed after the close is shown beside it under `after_close`, never merged into it: the report amendments
late events made, late events still waiting for one, complaint handling recorded since. An approval approves the
frozen pack and refers to its hash; an approved review is served exactly as approved. A period closed before
reviews were frozen, or a customer the close did not freeze, is built on each read as before.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import HTTPException, status
from pydantic import TypeAdapter
from sqlalchemy.dialects.postgresql import insert

from reporting import tables
from reporting.domain.config import PublishScope, ReportingConfig
from reporting.domain.notification_policy import REPORT_PUBLISHED
from reporting.domain.periods import Period, period_containing, previous_periods
from reporting.domain.review import (
    Delivered,
    ImprovementItem,
    ServiceReview,
    assemble_review,
    delivery_order,
)
from reporting.domain.satisfaction import Handling, complaint_counts, satisfaction
from reporting.quality import QUALITY_TREND_PERIODS, FactsCache, quality_results
from reporting.read_side import queries
from reporting.read_side.config import load_config
from reporting.reports import build_report, canonical_bytes
from reporting.review_tables import complaint_handling, improvements, review_approvals, review_freezes

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from reporting.domain.quality import Answer
    from reporting.i18n import Language

REVIEW_ADAPTER: TypeAdapter[ServiceReview] = TypeAdapter(ServiceReview)
DELIVERIES_ADAPTER: TypeAdapter[list[Delivered]] = TypeAdapter(list[Delivered])
MONTH_LABEL = re.compile(r"^(\d{4})-(\d{2})$")
WEEK_LABEL = re.compile(r"^(\d{4})-W(\d{2})$")
ALL_CUSTOMERS = "*"


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
    scope = queries.Scope(tenant, None, customer)
    cache = FactsCache(session, tenant, config)
    report = await build_report(
        session, tenant, period, config, config_version, None, customer, now, 0, quality_cache=cache
    )
    earlier = previous_periods(period, QUALITY_TREND_PERIODS)
    history = [(p.label, await queries.outcome_cells(session, scope, p.start, p.end)) for p in earlier]
    current = await queries.outcome_cells(session, scope, period.start, period.end)
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
        await _distribution(session, tenant, [p.report_id for p in report.header.published]),
    )


async def _distribution(session: AsyncSession, tenant: str, report_ids: list[str]) -> dict[str, list[Delivered]]:
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


async def _delivered_now(session: AsyncSession, tenant: str, document: dict[str, Any]) -> dict[str, Any]:
    """A frozen or approved pack with its distribution record as the delivery log says now: a report is
    published at the close, so who received it is only known after the freeze (the hash covers the pack as
    frozen, whose deliveries were then still pending)."""
    published = document.get("distribution") or []
    found = await _distribution(session, tenant, [str(item["report_id"]) for item in published])
    return {
        **document,
        "distribution": [
            {
                **item,
                "deliveries": DELIVERIES_ADAPTER.dump_python(
                    delivery_order(found.get(str(item["report_id"]), [])), mode="json"
                ),
            }
            for item in published
        ],
    }


def review_document(review: ServiceReview) -> dict[str, Any]:
    document: dict[str, Any] = REVIEW_ADAPTER.dump_python(review, mode="json")
    return document


def frozen_customers(config: ReportingConfig) -> list[str | None]:
    """Whose reviews a close freezes: the whole tenant's (None) and each customer reports are published for."""
    return [None, *sorted({scope.customer for scope in config.publish_scopes if scope.customer})]


async def after_close(
    session: AsyncSession,
    tenant: str,
    period: Period,
    customer: str | None,
    content: dict[str, Any],
    frozen_at: datetime,
) -> dict[str, Any]:
    """What changed since the review was frozen, for showing beside it (never merged into it)."""
    snapshots = tables.report_snapshots
    amendments = (
        await session.execute(
            sa.select(
                snapshots.c.report_id, snapshots.c.revision, snapshots.c.created_at, snapshots.c.content["amendment"]
            )
            .where(
                snapshots.c.tenant_id == tenant,
                snapshots.c.period_start == period.start,
                snapshots.c.scope_key == PublishScope(customer=customer).key,
                snapshots.c.kind == "amendment",
            )
            .order_by(snapshots.c.revision)
        )
    ).all()
    at_close = {c["ticket_id"]: c["status"] for c in content["satisfaction"]["complaints"]}
    handled = (
        await session.execute(
            sa.select(complaint_handling)
            .where(complaint_handling.c.tenant_id == tenant, complaint_handling.c.updated_at > frozen_at)
            .order_by(complaint_handling.c.updated_at, complaint_handling.c.ticket_id)
        )
    ).all()
    return {
        "report_amendments": [
            {
                "report_id": row.report_id,
                "revision": row.revision,
                "created_at": row.created_at.isoformat(),
                "late_events": (row[3] or {}).get("late_events"),
                "changes": (row[3] or {}).get("changes", []),
            }
            for row in amendments
        ],
        "pending_late_events": await queries.pending_late_changes(session, tenant, period.start),
        # A complaint handled (or marked) since the close; `at_close` None: it was not in the frozen log.
        "complaint_handling": [
            {
                "ticket_id": row.ticket_id,
                "at_close": at_close.get(row.ticket_id),
                "status": row.status,
                "marked": row.marked,
                "owner": row.owner,
                "note": row.note,
                "updated_at": row.updated_at.isoformat(),
            }
            for row in handled
            if row.ticket_id in at_close or row.marked
        ],
    }


class SqlReviewRepository:
    """The review packs as served, frozen and approved, and the complaint log's handling, in the unit of work's
    transaction (a read opens it read-only first: `ReportingUnitOfWork.read_only`); never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def freeze(
        self, tenant: str, period: Period, config: ReportingConfig, config_version: int, now: datetime
    ) -> None:
        """Freeze the period's reviews with their hashes (the close's transaction). Idempotent: a review frozen
        already is kept as it was."""
        session = self._session
        for customer in frozen_customers(config):
            content = review_document(
                await build_review(session, tenant, period, config, config_version, customer, now)
            )
            await session.execute(
                insert(review_freezes)
                .values(
                    tenant_id=tenant,
                    period_start=period.start,
                    customer=customer or ALL_CUSTOMERS,
                    period_end=period.end,
                    label=period.label,
                    content=content,
                    content_sha256=hashlib.sha256(canonical_bytes(content)).hexdigest(),
                    frozen_at=now,
                )
                .on_conflict_do_nothing()
            )

    async def current(
        self, tenant: str, label: str, customer: str | None, now: datetime
    ) -> tuple[dict[str, Any], Language]:
        """The pack of the period as served: approved, else frozen (with what changed since), else built now; and
        the tenant's language."""
        session = self._session
        config, version = await load_config(session, tenant)
        period = parse_period(label, config)
        approved = (
            await session.execute(
                sa.select(review_approvals).where(
                    review_approvals.c.tenant_id == tenant,
                    review_approvals.c.period_start == period.start,
                    review_approvals.c.customer == (customer or ALL_CUSTOMERS),
                )
            )
        ).first()
        frozen = (
            await session.execute(
                sa.select(review_freezes).where(
                    review_freezes.c.tenant_id == tenant,
                    review_freezes.c.period_start == period.start,
                    review_freezes.c.customer == (customer or ALL_CUSTOMERS),
                )
            )
        ).first()
        extra: dict[str, Any] = {}
        if frozen is not None:
            extra = {
                "frozen": {"frozen_at": frozen.frozen_at.isoformat(), "content_sha256": frozen.content_sha256},
                "after_close": await after_close(session, tenant, period, customer, frozen.content, frozen.frozen_at),
            }
        if approved is not None:
            return await _delivered_now(
                session,
                tenant,
                {
                    **approved.content,
                    "approval": {
                        "approved_by": approved.approved_by,
                        "approved_at": approved.approved_at.isoformat(),
                        "comment": approved.comment,
                        "content_sha256": approved.content_sha256,
                    },
                    **extra,
                },
            ), config.language
        if frozen is not None:
            return await _delivered_now(session, tenant, {**frozen.content, **extra}), config.language
        document = review_document(await build_review(session, tenant, period, config, version, customer, now))
        return document, config.language

    async def approve(
        self,
        tenant: str,
        label: str,
        customer: str | None,
        approved_by: str,
        comment: str | None,
        at: datetime,
    ) -> tuple[Period, str]:
        """Approve the period's pack (the frozen one, else as built now) in the unit's transaction; the period and
        the approved content's hash. 409 when the period has not ended or was approved already."""
        session = self._session
        config, version = await load_config(session, tenant)
        found = parse_period(label, config)
        if found.end > at:
            raise HTTPException(status.HTTP_409_CONFLICT, "a period is approved once it has ended")
        frozen = (
            await session.execute(
                sa.select(review_freezes.c.content, review_freezes.c.content_sha256).where(
                    review_freezes.c.tenant_id == tenant,
                    review_freezes.c.period_start == found.start,
                    review_freezes.c.customer == (customer or ALL_CUSTOMERS),
                )
            )
        ).first()
        if frozen is not None:  # the pack the close froze, by its hash
            content, digest = frozen.content, frozen.content_sha256
        else:  # a period not closed yet (the close delay) or a customer the close does not freeze
            content = review_document(await build_review(session, tenant, found, config, version, customer, at))
            digest = hashlib.sha256(canonical_bytes(content)).hexdigest()
        inserted = await session.execute(
            insert(review_approvals)
            .values(
                tenant_id=tenant,
                period_start=found.start,
                customer=customer or ALL_CUSTOMERS,
                period_end=found.end,
                label=found.label,
                approved_by=approved_by,
                approved_at=at,
                comment=comment,
                content=content,
                content_sha256=digest,
            )
            .on_conflict_do_nothing()
        )
        if not inserted.rowcount:  # type: ignore[attr-defined]
            raise HTTPException(status.HTTP_409_CONFLICT, "this review is approved already")
        return found, digest

    async def record_complaint_handling(
        self, tenant: str, ticket_id: str, values: dict[str, Any], at: datetime
    ) -> dict[str, Any]:
        """Mark a survey answer a complaint or record its handling (only the `values` given change); the row."""
        session = self._session
        statement = insert(complaint_handling).values(
            tenant_id=tenant,
            ticket_id=ticket_id,
            marked=values.get("marked", False),
            status=values.get("status", "open"),
            owner=values.get("owner"),
            note=values.get("note"),
            improvement_id=values.get("improvement_id"),
            updated_at=at,
        )
        row = (
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=["tenant_id", "ticket_id"], set_={**values, "updated_at": at}
                ).returning(complaint_handling)
            )
        ).first()
        assert row is not None
        return dict(row._mapping)
