"""The SLO signals as received: availability state changes, maintenance windows and threshold samples, with the
samples lock; never commits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from sla_engine import tables
from sla_engine.domain.slo.rollups import MaintenanceWindow, State, StateChange

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

# Seed of the per-tenant advisory lock between sample writers (shared) and threshold backfills (exclusive);
# 0 is the ticket lock (clocks/tickets.py), 1 the apply lock (bundles/repository.py), 3 the availability lock
# (slos/rollups.py).
_SAMPLES_LOCK_SEED = 2


class SqlSignalRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_state_changes(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self._session.execute(insert(tables.slo_state_changes).values(list(rows)).on_conflict_do_nothing())

    async def upsert_maintenance(self, rows: Sequence[dict[str, Any]]) -> None:
        """The newest event (by event time) for a window id wins, so a late `scheduled` never undoes a cancel."""
        m = tables.slo_maintenance
        for row in rows:
            statement = insert(m).values(**row)
            await self._session.execute(
                statement.on_conflict_do_update(
                    index_elements=[m.c.tenant_id, m.c.service, m.c.window_id],
                    set_={
                        "starts_at": statement.excluded.starts_at,
                        "ends_at": statement.excluded.ends_at,
                        "status": statement.excluded.status,
                        "event_time": statement.excluded.event_time,
                    },
                    where=m.c.event_time <= statement.excluded.event_time,
                )
            )

    async def lock_samples_shared(self, tenant_ids: Sequence[str]) -> None:
        """Held by a signal batch from before it reads the tenants' thresholds until it commits, so a backfill
        (`lock_samples_exclusive`) sees every sample not counted for the thresholds it adds."""
        keys = sorted(set(tenant_ids))
        if keys:
            await self._session.execute(
                sa.text(
                    "SELECT count(pg_advisory_xact_lock_shared(hashtextextended(k, :seed))) FROM "
                    "(SELECT unnest(CAST(:keys AS text[])) AS k ORDER BY 1) AS ordered"
                ),
                {"keys": keys, "seed": _SAMPLES_LOCK_SEED},
            )

    async def lock_samples_exclusive(self, tenant_id: str) -> None:
        """Waits for the tenant's signal batches in flight and holds back new ones until this transaction ends."""
        await self._session.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, :seed))"),
            {"key": tenant_id, "seed": _SAMPLES_LOCK_SEED},
        )

    async def add_samples(self, rows: Sequence[dict[str, Any]]) -> None:
        """Raw samples (`value` a finite `Decimal`); a redelivered event id is stored once."""
        if rows:
            await self._session.execute(insert(tables.slo_samples).values(list(rows)).on_conflict_do_nothing())

    async def purge_samples(self, before: datetime) -> int:
        """Delete the samples older than `before`; returns how many."""
        s = tables.slo_samples
        result = await self._session.execute(sa.delete(s).where(s.c.time < before))
        return int(getattr(result, "rowcount", 0) or 0)

    async def state_changes_since(self, tenant_id: str, service: str, since: datetime) -> list[StateChange]:
        """Each component's state in force at `since`, and every change after it."""
        s = tables.slo_state_changes
        latest = (
            sa.select(s.c.component, sa.func.max(s.c.at).label("at"))
            .where(s.c.tenant_id == tenant_id, s.c.service == service, s.c.at <= since)
            .group_by(s.c.component)
            .subquery()
        )
        before = (
            sa.select(s.c.component, s.c.at, s.c.state)
            .join(latest, sa.and_(s.c.component == latest.c.component, s.c.at == latest.c.at))
            .where(s.c.tenant_id == tenant_id, s.c.service == service)
            .order_by(s.c.at, s.c.event_id)
        )
        after = (
            sa.select(s.c.component, s.c.at, s.c.state)
            .where(s.c.tenant_id == tenant_id, s.c.service == service, s.c.at > since)
            .order_by(s.c.at, s.c.event_id)
        )
        rows = [*(await self._session.execute(before)), *(await self._session.execute(after))]
        return [StateChange(row.component, row.at, _state(row.state)) for row in rows]

    async def first_state_change(self, tenant_id: str, service: str) -> datetime | None:
        s = tables.slo_state_changes
        first: datetime | None = (
            await self._session.execute(
                sa.select(sa.func.min(s.c.at)).where(s.c.tenant_id == tenant_id, s.c.service == service)
            )
        ).scalar_one()
        return first

    async def maintenance_between(
        self, tenant_id: str, service: str, start: datetime, end: datetime
    ) -> list[MaintenanceWindow]:
        m = tables.slo_maintenance
        rows = await self._session.execute(
            sa.select(m).where(
                m.c.tenant_id == tenant_id,
                m.c.service == service,
                m.c.status == "scheduled",
                m.c.starts_at < end,
                m.c.ends_at > start,
            )
        )
        return [MaintenanceWindow(row.window_id, row.starts_at, row.ends_at) for row in rows]


def _state(value: str) -> State:
    if value == "up":
        return "up"
    if value == "degraded":
        return "degraded"
    return "down"
