"""Storage for service SLOs: signals, per-minute rollups and each SLO's last evaluation; never commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from sla_engine import tables
from sla_engine.domain.slo.rollups import AvailabilityMinute, MaintenanceWindow, RatioMinute, State, StateChange


@dataclass(frozen=True)
class StoredEvaluation:
    firing: frozenset[str]
    status: dict[str, Any] | None
    published_at: datetime | None


class SqlSloRepository:
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
            await self._session.execute(statement.on_conflict_do_update(
                index_elements=[m.c.tenant_id, m.c.service, m.c.window_id],
                set_={"starts_at": statement.excluded.starts_at, "ends_at": statement.excluded.ends_at,
                      "status": statement.excluded.status, "event_time": statement.excluded.event_time},
                where=m.c.event_time <= statement.excluded.event_time))

    async def add_ratio_minutes(self, tenant_id: str, service: str, sli: str, rows: Sequence[RatioMinute]) -> None:
        r = tables.slo_ratio_minutes
        for row in rows:
            statement = insert(r).values(tenant_id=tenant_id, service=service, sli=sli, minute=row.minute,
                                         good=row.good, total=row.total)
            await self._session.execute(statement.on_conflict_do_update(
                index_elements=[r.c.tenant_id, r.c.service, r.c.sli, r.c.minute],
                set_={"good": r.c.good + statement.excluded.good, "total": r.c.total + statement.excluded.total}))

    async def state_changes_since(self, tenant_id: str, service: str, since: datetime) -> list[StateChange]:
        """Each component's state in force at `since`, and every change after it."""
        s = tables.slo_state_changes
        latest = (sa.select(s.c.component, sa.func.max(s.c.at).label("at"))
                  .where(s.c.tenant_id == tenant_id, s.c.service == service, s.c.at <= since)
                  .group_by(s.c.component).subquery())
        before = (sa.select(s.c.component, s.c.at, s.c.state)
                  .join(latest, sa.and_(s.c.component == latest.c.component, s.c.at == latest.c.at))
                  .where(s.c.tenant_id == tenant_id, s.c.service == service)
                  .order_by(s.c.at, s.c.event_id))
        after = sa.select(s.c.component, s.c.at, s.c.state).where(
            s.c.tenant_id == tenant_id, s.c.service == service, s.c.at > since).order_by(s.c.at, s.c.event_id)
        rows = [*(await self._session.execute(before)), *(await self._session.execute(after))]
        return [StateChange(row.component, row.at, _state(row.state)) for row in rows]

    async def maintenance_between(self, tenant_id: str, service: str, start: datetime,
                                  end: datetime) -> list[MaintenanceWindow]:
        m = tables.slo_maintenance
        rows = await self._session.execute(sa.select(m).where(
            m.c.tenant_id == tenant_id, m.c.service == service, m.c.status == "scheduled",
            m.c.starts_at < end, m.c.ends_at > start))
        return [MaintenanceWindow(row.window_id, row.starts_at, row.ends_at) for row in rows]

    async def replace_availability_minutes(self, tenant_id: str, service: str, since: datetime,
                                           rows: Sequence[AvailabilityMinute]) -> None:
        a = tables.slo_availability_minutes
        await self._session.execute(sa.delete(a).where(a.c.tenant_id == tenant_id, a.c.service == service,
                                                       a.c.minute >= since))
        if rows:
            await self._session.execute(sa.insert(a), [
                {"tenant_id": tenant_id, "service": service, "minute": row.minute, "up_seconds": row.up,
                 "degraded_seconds": row.degraded, "down_seconds": row.down,
                 "maintenance_seconds": row.maintenance} for row in rows])

    async def last_availability_minute(self, tenant_id: str, service: str) -> datetime | None:
        a = tables.slo_availability_minutes
        last: datetime | None = (await self._session.execute(sa.select(sa.func.max(a.c.minute)).where(
            a.c.tenant_id == tenant_id, a.c.service == service))).scalar_one()
        return last

    async def first_state_change(self, tenant_id: str, service: str) -> datetime | None:
        s = tables.slo_state_changes
        first: datetime | None = (await self._session.execute(sa.select(sa.func.min(s.c.at)).where(
            s.c.tenant_id == tenant_id, s.c.service == service))).scalar_one()
        return first

    async def availability_minutes(self, tenant_id: str, service: str, start: datetime,
                                   end: datetime) -> list[AvailabilityMinute]:
        a = tables.slo_availability_minutes
        rows = await self._session.execute(sa.select(a).where(
            a.c.tenant_id == tenant_id, a.c.service == service, a.c.minute >= start, a.c.minute < end))
        return [AvailabilityMinute(row.minute, row.up_seconds, row.degraded_seconds, row.down_seconds,
                                   row.maintenance_seconds) for row in rows]

    async def ratio_minutes(self, tenant_id: str, service: str, sli: str, start: datetime,
                            end: datetime) -> list[RatioMinute]:
        r = tables.slo_ratio_minutes
        rows = await self._session.execute(sa.select(r.c.minute, r.c.good, r.c.total).where(
            r.c.tenant_id == tenant_id, r.c.service == service, r.c.sli == sli, r.c.minute >= start,
            r.c.minute < end))
        return [RatioMinute(row.minute, row.good, row.total) for row in rows]

    async def ticket_sla_minutes(self, tenant_id: str, service: str, policy: str, metric: str,
                                 priorities: Sequence[str], start: datetime, end: datetime) -> list[RatioMinute]:
        """Stopped clocks per minute of `stopped_at`: good = met, total = met + breached."""
        c = tables.clocks
        stopped_at = sa.cast(c.c.clock["stopped_at"].astext, sa.DateTime(timezone=True))
        minute = sa.func.date_trunc("minute", stopped_at).label("minute")
        query = (sa.select(minute, sa.func.count().filter(c.c.state == "met").label("good"),
                           sa.func.count().label("total"))
                 .where(c.c.tenant_id == tenant_id, c.c.policy_id == policy, c.c.metric == metric,
                        c.c.state.in_(("met", "breached")), c.c.clock["service"].astext == service,
                        stopped_at >= start, stopped_at < end)
                 .group_by(minute))
        if priorities:
            query = query.where(c.c.clock["priority"].astext.in_(list(priorities)))
        return [RatioMinute(row.minute, row.good, row.total) for row in await self._session.execute(query)]

    async def lock_evaluation(self, tenant_id: str, slo_id: str) -> StoredEvaluation:
        """The SLO's stored evaluation, locked for this transaction (created empty on first use)."""
        e = tables.slo_evaluations
        await self._session.execute(insert(e).values(tenant_id=tenant_id, slo_id=slo_id).on_conflict_do_nothing())
        row = (await self._session.execute(sa.select(e).where(e.c.tenant_id == tenant_id, e.c.slo_id == slo_id)
                                           .with_for_update())).one()
        return StoredEvaluation(frozenset(row.firing), row.status, row.published_at)

    async def save_evaluation(self, tenant_id: str, slo_id: str, firing: frozenset[str],
                              status: dict[str, Any] | None, published_at: datetime | None) -> None:
        e = tables.slo_evaluations
        await self._session.execute(sa.update(e).where(e.c.tenant_id == tenant_id, e.c.slo_id == slo_id).values(
            firing=sorted(firing), status=status, published_at=published_at))

    async def tenants_with_config(self) -> list[str]:
        c = tables.config_versions
        return list((await self._session.execute(sa.select(c.c.tenant_id).distinct())).scalars())


def _state(value: str) -> State:
    if value == "up":
        return "up"
    if value == "degraded":
        return "degraded"
    return "down"
