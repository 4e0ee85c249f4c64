"""The service review packs as stored and served: frozen by the period close, approved, and served with what
changed since (`SqlReviewRepository`, the unit of work's `reviews`; reporting.review_api serves it over HTTP;
reporting.reviews builds a pack).

Closing a period freezes its review (`SqlReviewRepository.freeze`, in the close's transaction): the pack of the
whole tenant and of each customer the tenant publishes reports for, stored with the SHA-256 of its
canonical JSON. A later read of the closed period serves that frozen pack (`frozen`: when, which hash); what
changed after the close is shown beside it under `after_close`, never merged into it: the report amendments
late events made, late events still waiting for one, complaint handling recorded since. An approval approves the
frozen pack and refers to its hash; an approved review is served exactly as approved. A period closed before
reviews were frozen, or a customer the close did not freeze, is built on each read as before.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import HTTPException, status
from pydantic import TypeAdapter
from sqlalchemy.dialects.postgresql import insert

from reporting import tables
from reporting.domain.config import PublishScope, ReportingConfig
from reporting.domain.review import Delivered, delivery_order
from reporting.read_side.config import load_config
from reporting.read_side.data_notes import pending_late_changes
from reporting.reports import canonical_bytes
from reporting.review_tables import complaint_handling, review_approvals, review_freezes
from reporting.reviews import build_review, distribution, parse_period, review_document

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

    from reporting.domain.periods import Period
    from reporting.i18n import Language

DELIVERIES_ADAPTER: TypeAdapter[list[Delivered]] = TypeAdapter(list[Delivered])
ALL_CUSTOMERS = "*"


async def _delivered_now(session: AsyncSession, tenant: str, document: dict[str, Any]) -> dict[str, Any]:
    """A frozen or approved pack with its distribution record as the delivery log says now: a report is
    published at the close, so who received it is only known after the freeze (the hash covers the pack as
    frozen, whose deliveries were then still pending)."""
    published = document.get("distribution") or []
    found = await distribution(session, tenant, [str(item["report_id"]) for item in published])
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
        "pending_late_events": await pending_late_changes(session, tenant, period.start),
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
