"""What the period close reads and writes: the tenants to close, the periods closed, the late changes waiting
for an amendment, and the frozen report snapshots. In the caller's transaction; never commits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on

from reporting import tables
from reporting.domain.periods import Period

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession


class SqlPeriodCloseRepository:
    """Closed periods, their late changes and the report snapshots frozen for them."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def tenants(self) -> list[str]:
        """Every tenant an event was received for."""
        return sorted((await self._session.execute(sa.select(tables.tenants_seen.c.tenant_id))).scalars().all())

    async def first_event_time(self, tenant: str) -> datetime | None:
        seen = tables.tenants_seen
        found: datetime | None = (
            await self._session.execute(sa.select(seen.c.first_event_time).where(seen.c.tenant_id == tenant))
        ).scalar()
        return found

    async def closed_starts(self, tenant: str, starts: Sequence[datetime] | None = None) -> set[datetime]:
        """The starts of the tenant's closed periods (among `starts` when given)."""
        p = tables.period_closes
        query = sa.select(p.c.period_start).where(p.c.tenant_id == tenant)
        if starts is not None:
            query = query.where(p.c.period_start.in_(starts))
        return set((await self._session.execute(query)).scalars().all())

    async def record_close(self, tenant: str, period: Period, at: datetime) -> None:
        await self._session.execute(
            sa.insert(tables.period_closes).values(
                tenant_id=tenant,
                period_start=period.start,
                period_end=period.end,
                kind=period.kind,
                label=period.label,
                timezone=period.timezone,
                closed_at=at,
            )
        )

    async def closed_period(self, tenant: str, start: datetime) -> Period | None:
        p = tables.period_closes
        close = (
            (await self._session.execute(sa.select(p).where(p.c.tenant_id == tenant, p.c.period_start == start)))
            .mappings()
            .first()
        )
        if close is None:
            return None
        return Period(close["period_start"], close["period_end"], close["timezone"], close["kind"], close["label"])

    async def pending_late_changes(self, tenant: str | None) -> list[tuple[str, datetime, datetime]]:
        """(tenant, period start, last received) of the closed periods with late changes not amended yet."""
        late = tables.late_changes
        query = (
            sa.select(late.c.tenant_id, late.c.period_start, sa.func.max(late.c.received_at))
            .where(late.c.handled_at.is_(None))
            .group_by(late.c.tenant_id, late.c.period_start)
        )
        if tenant is not None:
            query = query.where(late.c.tenant_id == tenant)
        return [(found_tenant, start, last) for found_tenant, start, last in (await self._session.execute(query)).all()]

    async def claim_late_changes(self, tenant: str, start: datetime) -> list[int]:
        """The ids of the period's late changes not amended yet, locked; those another replica holds are
        skipped."""
        late = tables.late_changes
        return list(
            (
                await self._session.execute(
                    sa.select(late.c.id)
                    .where(late.c.tenant_id == tenant, late.c.period_start == start, late.c.handled_at.is_(None))
                    .with_for_update(skip_locked=True)
                )
            )
            .scalars()
            .all()
        )

    async def mark_amended(self, ids: Sequence[int], at: datetime, amendment_ids: list[str]) -> None:
        late = tables.late_changes
        await self._session.execute(
            sa.update(late).where(late.c.id.in_(ids)).values(handled_at=at, amendment_ids=amendment_ids)
        )

    async def latest_snapshots(self, tenant: str, start: datetime) -> list[dict[str, Any]]:
        """The latest revision of the period's snapshot in each scope."""
        s = tables.report_snapshots
        return [
            dict(row)
            for row in (
                await self._session.execute(
                    sa.select(s)
                    .where(s.c.tenant_id == tenant, s.c.period_start == start)
                    .order_by(s.c.scope_key, s.c.revision.desc())
                    .ext(distinct_on(s.c.scope_key))
                )
            )
            .mappings()
            .all()
        ]

    async def add_snapshot(self, values: dict[str, Any]) -> None:
        await self._session.execute(sa.insert(tables.report_snapshots).values(**values))
