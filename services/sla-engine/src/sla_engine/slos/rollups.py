"""The SLO rollups as written: per-minute and per-day sums of the ratio and availability series, added to or
rebuilt, with the availability lock; never commits. Reading them back as series is `slos/series.py`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from sla_engine import tables
from sla_engine.domain.slo.rollups import day_of

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

    from sla_engine.domain.slo.definition import ThresholdSli
    from sla_engine.domain.slo.rollups import AvailabilityMinute, RatioMinute

# Seed of the per-service lock of the availability rollup (`lock_availability`); 2 is the samples lock
# (slos/signals.py).
_AVAILABILITY_LOCK_SEED = 3


class SqlRollupRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_ratio_minutes(self, tenant_id: str, service: str, sli: str, rows: Sequence[RatioMinute]) -> None:
        r = tables.slo_ratio_minutes
        for row in rows:
            statement = insert(r).values(
                tenant_id=tenant_id, service=service, sli=sli, minute=row.minute, good=row.good, total=row.total
            )
            await self._session.execute(
                statement.on_conflict_do_update(
                    index_elements=[r.c.tenant_id, r.c.service, r.c.sli, r.c.minute],
                    set_={"good": r.c.good + statement.excluded.good, "total": r.c.total + statement.excluded.total},
                )
            )
        # The day sums, added to like the minutes (so concurrent batches commute).
        d = tables.slo_ratio_days
        days: dict[datetime, list[Any]] = {}
        for row in rows:
            day = days.setdefault(day_of(row.minute), [0, 0, None])
            day[0] += row.good
            day[1] += row.total
            if row.total > 0 and (day[2] is None or row.minute > day[2]):
                day[2] = row.minute
        for day_start, (good, total, last_data) in sorted(days.items()):
            statement = insert(d).values(
                tenant_id=tenant_id,
                service=service,
                sli=sli,
                day=day_start,
                good=good,
                total=total,
                last_data=last_data,
            )
            await self._session.execute(
                statement.on_conflict_do_update(
                    index_elements=[d.c.tenant_id, d.c.service, d.c.sli, d.c.day],
                    set_={
                        "good": d.c.good + statement.excluded.good,
                        "total": d.c.total + statement.excluded.total,
                        "last_data": sa.func.greatest(d.c.last_data, statement.excluded.last_data),
                    },
                )
            )

    async def rebuild_threshold_series(self, tenant_id: str, service: str, threshold: ThresholdSli) -> None:
        """Replace the series' minutes from the first stored sample's minute on with counts from the samples.

        One minute = `date_trunc` in UTC, which is `minute_of`; the comparison is on `numeric`, so it is as
        exact as `ThresholdSli.meets`. Minutes before the first stored sample are left as they are."""
        s, r = tables.slo_samples, tables.slo_ratio_minutes
        of_series = (s.c.tenant_id == tenant_id, s.c.service == service, s.c.sli == threshold.sli)
        minute = sa.func.date_trunc("minute", s.c.time, "UTC")
        first = sa.select(sa.func.date_trunc("minute", sa.func.min(s.c.time), "UTC")).where(*of_series)
        await self._session.execute(
            sa.delete(r).where(
                r.c.tenant_id == tenant_id,
                r.c.service == service,
                r.c.sli == threshold.rollup_key,
                r.c.minute >= first.scalar_subquery(),
            )
        )
        good = sa.func.count().filter(_holds(s.c.value, threshold))
        counted = (
            sa.select(
                sa.literal(tenant_id),
                sa.literal(service),
                sa.literal(threshold.rollup_key),
                minute.label("minute"),
                good,
                sa.func.count(),
            )
            .where(*of_series)
            .group_by(minute)
        )
        await self._session.execute(
            sa.insert(r).from_select(["tenant_id", "service", "sli", "minute", "good", "total"], counted)
        )
        await self.refresh_ratio_days(tenant_id, service, threshold.rollup_key)

    async def refresh_ratio_days(self, tenant_id: str, service: str, sli: str) -> None:
        """Recompute the series' day sums from its minutes (after minutes were replaced, not added to)."""
        r, d = tables.slo_ratio_minutes, tables.slo_ratio_days
        await self._session.execute(
            sa.delete(d).where(d.c.tenant_id == tenant_id, d.c.service == service, d.c.sli == sli)
        )
        day = sa.func.date_trunc("day", r.c.minute, "UTC")
        await self._session.execute(
            sa.insert(d).from_select(
                ["tenant_id", "service", "sli", "day", "good", "total", "last_data"],
                sa.select(
                    r.c.tenant_id,
                    r.c.service,
                    r.c.sli,
                    day,
                    sa.func.sum(r.c.good),
                    sa.func.sum(r.c.total),
                    sa.func.max(r.c.minute).filter(r.c.total > 0),
                )
                .where(r.c.tenant_id == tenant_id, r.c.service == service, r.c.sli == sli)
                .group_by(r.c.tenant_id, r.c.service, r.c.sli, day),
            )
        )

    async def lock_availability(self, tenant_id: str, service: str) -> None:
        """Held from before the service's availability minutes are computed until the transaction ends.

        Every engine replica rewrites the same minutes (each periodic pass, and the signal batches of its
        partitions): unserialised, two replicas deleting and inserting the same range collide on the minutes'
        primary key, and a replica that read the state changes before another's batch committed would write
        its stale minutes over the fresh ones. Under the lock the second writer reads, computes and writes
        after the first committed."""
        await self._session.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, :seed))"),
            {"key": f"{tenant_id}/{service}", "seed": _AVAILABILITY_LOCK_SEED},
        )

    async def replace_availability_minutes(
        self, tenant_id: str, service: str, since: datetime, rows: Sequence[AvailabilityMinute]
    ) -> None:
        """Replace the service's minutes from `since` on (the caller holds `lock_availability`)."""
        a = tables.slo_availability_minutes
        await self._session.execute(
            sa.delete(a).where(a.c.tenant_id == tenant_id, a.c.service == service, a.c.minute >= since)
        )
        if rows:
            await self._session.execute(
                sa.insert(a),
                [
                    {
                        "tenant_id": tenant_id,
                        "service": service,
                        "minute": row.minute,
                        "up_seconds": row.up,
                        "degraded_seconds": row.degraded,
                        "down_seconds": row.down,
                        "maintenance_seconds": row.maintenance,
                    }
                    for row in rows
                ],
            )
        await self.refresh_availability_days(tenant_id, service, since)

    async def refresh_availability_days(self, tenant_id: str, service: str, since: datetime) -> None:
        """Recompute the service's day sums from the day of `since` on, from its minutes."""
        a, d = tables.slo_availability_minutes, tables.slo_availability_days
        first = day_of(since)
        await self._session.execute(
            sa.delete(d).where(d.c.tenant_id == tenant_id, d.c.service == service, d.c.day >= first)
        )
        day = sa.func.date_trunc("day", a.c.minute, "UTC")
        total = a.c.up_seconds + a.c.degraded_seconds + a.c.down_seconds
        await self._session.execute(
            sa.insert(d).from_select(
                ["tenant_id", "service", "day", "up_seconds", "degraded_seconds", "down_seconds", "last_data"],
                sa.select(
                    a.c.tenant_id,
                    a.c.service,
                    day,
                    sa.func.sum(a.c.up_seconds),
                    sa.func.sum(a.c.degraded_seconds),
                    sa.func.sum(a.c.down_seconds),
                    sa.func.max(a.c.minute).filter(total > 0),
                )
                .where(a.c.tenant_id == tenant_id, a.c.service == service, a.c.minute >= first)
                .group_by(a.c.tenant_id, a.c.service, day),
            )
        )

    async def last_availability_minute(self, tenant_id: str, service: str) -> datetime | None:
        a = tables.slo_availability_minutes
        last: datetime | None = (
            await self._session.execute(
                sa.select(sa.func.max(a.c.minute)).where(a.c.tenant_id == tenant_id, a.c.service == service)
            )
        ).scalar_one()
        return last


def _holds(value: sa.ColumnElement[Any], threshold: ThresholdSli) -> sa.ColumnElement[bool]:
    bound = sa.literal(threshold.threshold, sa.Numeric())
    if threshold.operator == "<=":
        return value <= bound
    if threshold.operator == "<":
        return value < bound
    if threshold.operator == ">=":
        return value >= bound
    return value > bound
