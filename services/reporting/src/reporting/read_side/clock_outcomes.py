"""Reads of the clock outcomes: attainment, times, breached, open and imminent cycles, the clock list.

Counts come from the daily rollups for the whole UTC days of a period and from the raw rows for its partial edges;
lists and percentiles from the raw rows through partial and covering indexes; `underpinning` counts the OLA/UC
breaches under the period's SLA-breached tickets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from reporting.domain.inputs import OutcomeCell, UnderpinningLink
from reporting.domain.model import BreachedCycle, ClockRow, TimeStats
from reporting.read_side.sql import compose, period_edges

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from sqlalchemy.ext.asyncio import AsyncSession

    from reporting.read_side.sql import Scope


async def outcome_cells(session: AsyncSession, scope: Scope, start: datetime, end: datetime) -> list[OutcomeCell]:
    first_day, end_day, edges, params = period_edges(start, end, "stopped_at")
    # The report groups by service, never by customer (a filter only): the smaller rollup serves unless the
    # scope names a customer.
    dims = "service, agreement, policy_id, policy_version, calendar, metric, priority"
    rollup = "clock_daily" if scope.customer is not None else "clock_daily_service"
    sql = compose(
        """
        SELECT $dims, sum(met)::bigint AS met, sum(breached)::bigint AS breached FROM (
            SELECT $dims, met, breached FROM $rollup
            WHERE tenant_id = :tenant AND day >= :first_day AND day < :end_day$scope
            UNION ALL
            SELECT $dims, (state = 'met')::int, (state = 'breached')::int FROM clock_outcomes
            WHERE tenant_id = :tenant AND state IN ('met', 'breached') AND $edges$scope
        ) counted
        GROUP BY $dims
        HAVING sum(met) <> 0 OR sum(breached) <> 0""",
        dims=dims,
        scope=scope.sql(),
        edges=edges,
        rollup=rollup,
    )
    rows = (await session.execute(sa.text(sql), scope.params(first_day=first_day, end_day=end_day, **params))).all()
    return [
        OutcomeCell(
            r.service,
            scope.customer or "*",
            r.agreement,
            r.policy_id,
            r.policy_version,
            r.calendar,
            r.metric,
            r.priority,
            int(r.met),
            int(r.breached),
        )
        for r in rows
    ]


async def time_stats(session: AsyncSession, scope: Scope, start: datetime, end: datetime) -> list[TimeStats]:
    sql = compose(
        """
        SELECT agreement, metric, CASE WHEN grouping(priority) = 1 THEN 'all' ELSE priority END AS priority,
               count(*) AS n, sum(elapsed_seconds)::bigint AS total,
               percentile_disc(0.5) WITHIN GROUP (ORDER BY elapsed_seconds) AS median,
               percentile_disc(0.9) WITHIN GROUP (ORDER BY elapsed_seconds) AS p90
        FROM clock_outcomes
        WHERE tenant_id = :tenant AND stopped_at >= :start AND stopped_at < :end
          AND state IN ('met', 'breached')$scope
        GROUP BY GROUPING SETS ((agreement, metric, priority), (agreement, metric))""",
        scope=scope.sql(),
    )
    await session.execute(sa.text("SET LOCAL work_mem = '64MB'"))
    rows = (await session.execute(sa.text(sql), scope.params(start=start, end=end))).all()
    return [
        TimeStats(
            r.agreement,
            r.metric,
            r.priority,
            int(r.n),
            int(r.total),
            int(r.total) // int(r.n),
            int(r.median),
            int(r.p90),
        )
        for r in rows
    ]


_CYCLE_COLUMNS = """ticket_id, policy_id, policy_version, agreement, metric, cycle, priority, service, customer, state,
    target_seconds, elapsed_seconds,
    greatest(elapsed_seconds - target_seconds, 0) AS over_target_seconds,
    CASE WHEN target_seconds > 0
         THEN round(100.0 * greatest(elapsed_seconds - target_seconds, 0) / target_seconds, 2)::float8 END
         AS over_target_percent,
    breached_at, stopped_at"""


def _breached_cycle(row: Any) -> BreachedCycle:
    return BreachedCycle(*row)


async def breached_cycles(session: AsyncSession, scope: Scope, start: datetime, end: datetime) -> list[BreachedCycle]:
    # `'breached' AS state` keeps the scan index-only (state is the index's predicate, not a column of it).
    columns = _CYCLE_COLUMNS.replace("customer, state,", "customer, 'breached' AS state,")
    sql = compose(
        """SELECT $columns FROM clock_outcomes
        WHERE tenant_id = :tenant AND state = 'breached' AND stopped_at >= :start AND stopped_at < :end$scope""",
        columns=columns,
        scope=scope.sql(),
    )
    rows = (await session.execute(sa.text(sql), scope.params(start=start, end=end))).all()
    return [BreachedCycle(*r) for r in rows]


async def open_breaches(
    session: AsyncSession, scope: Scope, end: datetime, limit: int | None = None
) -> list[BreachedCycle]:
    """Cycles breached before `end` and not stopped by then: still running or paused, or stopped later."""
    sql = compose(
        """
        SELECT $columns FROM clock_outcomes
        WHERE tenant_id = :tenant AND state IN ('running', 'paused') AND breached AND breached_at < :end$scope
        UNION ALL
        SELECT $columns FROM clock_outcomes
        WHERE tenant_id = :tenant AND state = 'breached' AND stopped_at >= :end AND breached_at < :end$scope
        ORDER BY breached_at, ticket_id $limit""",
        columns=f"{_CYCLE_COLUMNS}, calendar, last_event_time",
        scope=scope.sql(),
        limit="LIMIT :limit" if limit else "",
    )
    rows = (await session.execute(sa.text(sql), scope.params(end=end, limit=limit))).all()
    return [_breached_cycle(r) for r in rows]


async def about_to_breach(
    session: AsyncSession, scope: Scope, now: datetime, horizon: timedelta, limit: int
) -> list[ClockRow]:
    sql = compose(
        """SELECT * FROM clock_outcomes
        WHERE tenant_id = :tenant AND state IN ('running', 'paused') AND state = 'running' AND NOT breached
          AND due_at >= :now AND due_at < :until$scope
        ORDER BY due_at LIMIT :limit""",
        scope=scope.sql(),
    )
    rows = (await session.execute(sa.text(sql), scope.params(now=now, until=now + horizon, limit=limit))).all()
    return [_clock_row(r) for r in rows]


def _clock_row(r: Any) -> ClockRow:
    return ClockRow(
        r.ticket_id,
        r.policy_id,
        r.policy_version,
        r.agreement,
        r.metric,
        r.cycle,
        r.state,
        r.breached,
        r.elapsed_seconds,
        r.target_seconds,
        r.started_at,
        r.stopped_at,
        r.breached_at,
        r.due_at,
        r.service,
        r.customer,
        r.priority,
        r.calendar,
        r.last_event_time,
    )


async def clock_rows(
    session: AsyncSession, scope: Scope, start: datetime, end: datetime, limit: int
) -> tuple[list[ClockRow], bool]:
    """Cycles stopped in the period and cycles not stopped that started before its end (the skeleton's list)."""
    if limit <= 0:
        return [], False
    sql = compose(
        """SELECT * FROM clock_outcomes
        WHERE tenant_id = :tenant$scope
          AND ((stopped_at >= :start AND stopped_at < :end) OR (stopped_at IS NULL AND started_at < :end))
        ORDER BY ticket_id, policy_id, metric, cycle LIMIT :limit""",
        scope=scope.sql(),
    )
    rows = (await session.execute(sa.text(sql), scope.params(start=start, end=end, limit=limit + 1))).all()
    return [_clock_row(r) for r in rows[:limit]], len(rows) > limit


async def underpinning(
    session: AsyncSession, scope: Scope, start: datetime, end: datetime
) -> tuple[int, list[UnderpinningLink]]:
    """SLA-breached tickets of the period, and how many of them also breached each OLA/UC metric."""
    params = scope.params(start=start, end=end)
    total = (
        await session.execute(
            sa.text(
                compose(
                    """SELECT count(DISTINCT ticket_id) FROM clock_outcomes
        WHERE tenant_id = :tenant AND agreement = 'SLA' AND state = 'breached'
          AND stopped_at >= :start AND stopped_at < :end$scope""",
                    scope=scope.sql(),
                )
            ),
            params,
        )
    ).scalar()
    rows = (
        await session.execute(
            sa.text(
                compose(
                    """
        SELECT u.agreement, u.policy_id, u.metric, count(DISTINCT s.ticket_id) AS tickets
        FROM clock_outcomes s JOIN clock_outcomes u
          ON u.tenant_id = s.tenant_id AND u.ticket_id = s.ticket_id AND u.agreement <> 'SLA' AND u.breached
         AND u.state <> 'cancelled'
        WHERE s.tenant_id = :tenant AND s.agreement = 'SLA' AND s.state = 'breached'
          AND s.stopped_at >= :start AND s.stopped_at < :end$scope_s
        GROUP BY u.agreement, u.policy_id, u.metric""",
                    scope_s=scope.sql("s"),
                )
            ),
            params,
        )
    ).all()
    return int(total or 0), [UnderpinningLink(r.agreement, r.policy_id, r.metric, int(r.tickets)) for r in rows]
