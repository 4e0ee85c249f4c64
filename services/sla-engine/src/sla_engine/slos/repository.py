"""Storage for service SLOs: signals, per-minute rollups and each SLO's last evaluation; never commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert

from sla_engine import tables
from sla_engine.domain.slo.rollups import AvailabilityMinute, MaintenanceWindow, RatioMinute, State, StateChange
from sla_engine.domain.slo.series import Head, MinuteSeries, RangeSums, epoch_ceil
from sla_engine.ports import StoredEvaluation

if TYPE_CHECKING:
    from collections.abc import Sequence
    from decimal import Decimal

    from sqlalchemy.ext.asyncio import AsyncSession

    from sla_engine.domain.slo.definition import ThresholdSli

# Seed of the per-tenant advisory lock between sample writers (shared) and threshold backfills (exclusive);
# 0 is the ticket lock (clocks/tickets.py) and 1 the apply lock (bundles/repository.py).
_SAMPLES_LOCK_SEED = 2
# Seed of the per-service lock of the availability rollup (`lock_availability`).
_AVAILABILITY_LOCK_SEED = 3
_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class _DaySums:
    first: datetime
    last: datetime
    sums: RangeSums
    last_data: datetime | None


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
            day = days.setdefault(_day(row.minute), [0, 0, None])
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
        first = _day(since)
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

    async def first_state_change(self, tenant_id: str, service: str) -> datetime | None:
        s = tables.slo_state_changes
        first: datetime | None = (
            await self._session.execute(
                sa.select(sa.func.min(s.c.at)).where(s.c.tenant_id == tenant_id, s.c.service == service)
            )
        ).scalar_one()
        return first

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
        first, last = _day(start), _day(split)
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

    async def lock_evaluation(self, tenant_id: str, slo_id: str) -> StoredEvaluation:
        """The SLO's stored evaluation, locked for this transaction (created empty on first use)."""
        e = tables.slo_evaluations
        await self._session.execute(insert(e).values(tenant_id=tenant_id, slo_id=slo_id).on_conflict_do_nothing())
        row = (
            await self._session.execute(
                sa.select(e).where(e.c.tenant_id == tenant_id, e.c.slo_id == slo_id).with_for_update()
            )
        ).one()
        return StoredEvaluation(frozenset(row.firing), row.status, row.published_at)

    async def save_evaluation(
        self,
        tenant_id: str,
        slo_id: str,
        firing: frozenset[str],
        status: dict[str, Any] | None,
        published_at: datetime | None,
    ) -> None:
        e = tables.slo_evaluations
        await self._session.execute(
            sa.update(e)
            .where(e.c.tenant_id == tenant_id, e.c.slo_id == slo_id)
            .values(firing=sorted(firing), status=status, published_at=published_at)
        )

    async def tenants_with_config(self) -> list[str]:
        c = tables.config_versions
        return list((await self._session.execute(sa.select(c.c.tenant_id).distinct())).scalars())


def _day(at: datetime) -> datetime:
    """The start of the UTC day of `at` (`date_trunc('day', ..., 'UTC')`)."""
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


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


def _holds(value: sa.ColumnElement[Any], threshold: ThresholdSli) -> sa.ColumnElement[bool]:
    bound = sa.literal(threshold.threshold, sa.Numeric())
    if threshold.operator == "<=":
        return value <= bound
    if threshold.operator == "<":
        return value < bound
    if threshold.operator == ">=":
        return value >= bound
    return value > bound


def _state(value: str) -> State:
    if value == "up":
        return "up"
    if value == "degraded":
        return "degraded"
    return "down"
