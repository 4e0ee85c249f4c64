"""The SLO series as evaluation reads them: a window's minutes as ordered columns, the whole days before a split
summed from the day sums, and ticket SLA attainment per minute from the clocks; reads only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from sla_engine import tables
from sla_engine.domain.slo.rollups import RatioMinute, day_of
from sla_engine.domain.slo.series import Head, MinuteSeries, RangeSums, epoch_ceil

if TYPE_CHECKING:
    from collections.abc import Sequence
    from decimal import Decimal

    from sqlalchemy.ext.asyncio import AsyncSession

_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class _DaySums:
    first: datetime
    last: datetime
    sums: RangeSums
    last_data: datetime | None


class SqlSeriesRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def availability_series(
        self,
        tenant_id: str,
        service: str,
        start: datetime,
        end: datetime,
        degraded_weight: Decimal,
        split: datetime | None = None,
    ) -> MinuteSeries:
        """The minutes `[start, end)` as ordered columns, aggregated into arrays by the database (asyncpg
        decodes integer arrays without a Python object per row). With `split`, the minutes before it are
        summed by the database instead (the series' head)."""
        a = tables.slo_availability_minutes
        of_service = (a.c.tenant_id == tenant_id, a.c.service == service, a.c.minute < end)
        total = a.c.up_seconds + a.c.degraded_seconds + a.c.down_seconds
        row = (
            await self._session.execute(
                _columns(
                    a.c.minute,
                    (total, a.c.down_seconds, a.c.degraded_seconds),
                    *of_service,
                    a.c.minute >= (split or start),
                )
            )
        ).one()
        head = None
        if split is not None:
            d = tables.slo_availability_days
            days = await self._day_sums(
                d.c.up_seconds + d.c.degraded_seconds + d.c.down_seconds,
                d.c.down_seconds,
                d.c.degraded_seconds,
                d.c.last_data,
                d.c.day,
                start,
                split,
                d.c.tenant_id == tenant_id,
                d.c.service == service,
            )
            head = await self._head(
                a.c.minute, total, a.c.down_seconds, a.c.degraded_seconds, start, split, days, *of_service
            )
        return MinuteSeries.from_columns(row[0] or [], row[1] or [], row[2] or [], row[3] or [], degraded_weight, head)

    async def ratio_series(
        self, tenant_id: str, service: str, sli: str, start: datetime, end: datetime, split: datetime | None = None
    ) -> MinuteSeries:
        """The series' minutes `[start, end)` as ordered columns (bad = total - good); with `split`, the minutes
        before it summed by the database (the series' head)."""
        r = tables.slo_ratio_minutes
        of_series = (r.c.tenant_id == tenant_id, r.c.service == service, r.c.sli == sli, r.c.minute < end)
        row = (
            await self._session.execute(
                _columns(r.c.minute, (r.c.total, r.c.total - r.c.good), *of_series, r.c.minute >= (split or start))
            )
        ).one()
        head = None
        if split is not None:
            d = tables.slo_ratio_days
            days = await self._day_sums(
                d.c.total,
                d.c.total - d.c.good,
                sa.literal(0),
                d.c.last_data,
                d.c.day,
                start,
                split,
                d.c.tenant_id == tenant_id,
                d.c.service == service,
                d.c.sli == sli,
            )
            head = await self._head(
                r.c.minute, r.c.total, r.c.total - r.c.good, sa.literal(0), start, split, days, *of_series
            )
        return MinuteSeries.from_columns(row[0] or [], row[1] or [], row[2] or [], head=head)

    async def _day_sums(
        self,
        total: sa.ColumnElement[Any],
        bad: sa.ColumnElement[Any],
        weighted: sa.ColumnElement[Any],
        last_data: sa.ColumnElement[Any],
        day: sa.ColumnElement[Any],
        start: datetime,
        split: datetime,
        *where: sa.ColumnElement[bool],
    ) -> _DaySums | None:
        """The sums of the whole UTC days inside `[start, split)`, or None when there is none."""
        first, last = day_of(start), day_of(split)
        if first < start:
            first += _ONE_DAY
        if first >= last:
            return None
        row = (
            await self._session.execute(
                sa.select(
                    sa.func.coalesce(sa.func.sum(total), 0),
                    sa.func.coalesce(sa.func.sum(bad), 0),
                    sa.func.coalesce(sa.func.sum(weighted), 0),
                    sa.func.max(last_data),
                ).where(*where, day >= first, day < last)
            )
        ).one()
        return _DaySums(first, last, RangeSums(int(row[0]), int(row[1]), int(row[2])), row[3])

    async def _head(
        self,
        minute: sa.ColumnElement[Any],
        total: sa.ColumnElement[Any],
        bad: sa.ColumnElement[Any],
        weighted: sa.ColumnElement[Any],
        start: datetime,
        split: datetime,
        days: _DaySums | None,
        *where: sa.ColumnElement[bool],
    ) -> Head:
        """The minutes `[start, split)` summed: whole days from the day sums, the rest from the minutes."""
        outside = sa.true() if days is None else sa.or_(minute < days.first, minute >= days.last)
        row = (
            await self._session.execute(
                sa.select(
                    sa.func.coalesce(sa.func.sum(total), 0),
                    sa.func.coalesce(sa.func.sum(bad), 0),
                    sa.func.coalesce(sa.func.sum(weighted), 0),
                    sa.func.max(minute).filter(total > 0),
                ).where(*where, minute >= start, minute < split, outside)
            )
        ).one()
        sums = RangeSums(int(row[0]), int(row[1]), int(row[2]))
        last_data: datetime | None = row[3]
        if days is not None:
            sums = sums + days.sums
            last_data = max((found for found in (last_data, days.last_data) if found is not None), default=None)
        return Head(epoch_ceil(start), epoch_ceil(split), sums, last_data)

    async def ticket_sla_minutes(
        self,
        tenant_id: str,
        service: str,
        policy: str,
        metric: str,
        priorities: Sequence[str],
        start: datetime,
        end: datetime,
    ) -> list[RatioMinute]:
        """Stopped clocks per minute of `stopped_at`: good = met, total = met + breached."""
        c = tables.clocks
        stopped_at = sa.cast(c.c.clock["stopped_at"].astext, sa.DateTime(timezone=True))
        minute = sa.func.date_trunc("minute", stopped_at).label("minute")
        query = (
            sa.select(minute, sa.func.count().filter(c.c.state == "met").label("good"), sa.func.count().label("total"))
            .where(
                c.c.tenant_id == tenant_id,
                c.c.policy_id == policy,
                c.c.metric == metric,
                c.c.state.in_(("met", "breached")),
                c.c.clock["service"].astext == service,
                stopped_at >= start,
                stopped_at < end,
            )
            .group_by(minute)
        )
        if priorities:
            query = query.where(c.c.clock["priority"].astext.in_(list(priorities)))
        return [RatioMinute(row.minute, row.good, row.total) for row in await self._session.execute(query)]


def _columns(
    minute: sa.ColumnElement[Any], values: tuple[sa.ColumnElement[Any], ...], *where: sa.ColumnElement[bool]
) -> sa.Select[Any]:
    """One row of arrays: epoch seconds of each minute, then each of `values` (NULL when empty). The rows come
    from one index scan in minute order (an `ORDER BY` inside each `array_agg` would sort once per array);
    `MinuteSeries.from_columns` checks the order, which PostgreSQL keeps but does not promise."""
    epoch = sa.cast(sa.extract("epoch", minute), sa.BigInteger)
    rows = sa.select(epoch, *values).where(*where).order_by(minute).subquery()
    arrays: list[sa.ColumnElement[Any]] = [sa.func.array_agg(column, type_=ARRAY(sa.BigInteger)) for column in rows.c]
    return sa.select(*arrays)
