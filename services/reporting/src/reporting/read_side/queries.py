"""Reads behind the report and the dashboard. Counts come from the daily rollups for the whole UTC days of
a period and from the raw rows for its partial edges; lists and percentiles come from the raw rows through
partial and covering indexes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from string import Template
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from reporting.domain.inputs import (
    AlertRow,
    CsatCell,
    OutcomeCell,
    SloStatusRow,
    UnderpinningLink,
    VolumeCell,
)
from reporting.domain.model import BreachedCycle, ClockRow, EventRange, PublishedSnapshot, TimeStats
from reporting.domain.periods import split_utc_days
from slm_shared.events import CLOCK_EVENT

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


def compose(template: str, **fragments: str) -> str:
    """SQL from a template and fragments this module wrote (column lists, scope and edge conditions);
    every value from a request is a bound parameter, never a fragment."""
    return Template(template).substitute(fragments)


@dataclass(frozen=True)
class Scope:
    tenant: str
    service: str | None = None
    customer: str | None = None

    def sql(self, alias: str = "", customer: bool = True) -> str:
        prefix = f"{alias}." if alias else ""
        parts = []
        if self.service is not None:
            parts.append(f" AND {prefix}service = :service")
        if self.customer is not None and customer:
            parts.append(f" AND {prefix}customer = :customer")
        return "".join(parts)

    def params(self, **extra: Any) -> dict[str, Any]:
        return {"tenant": self.tenant, "service": self.service, "customer": self.customer, **extra}


def period_edges(start: datetime, end: datetime, column: str) -> tuple[date, date, str, dict[str, Any]]:
    """[start, end) as whole UTC days (for the rollups) and an SQL condition on `column` for the partial edges."""
    split = split_utc_days(start, end)
    clauses, params = [], {}
    for index, (edge_start, edge_end) in enumerate(split.edges):
        clauses.append(f"({column} >= :edge{index}_start AND {column} < :edge{index}_end)")
        params[f"edge{index}_start"] = edge_start
        params[f"edge{index}_end"] = edge_end
    return split.first_day, split.end_day, "(" + (" OR ".join(clauses) or "false") + ")", params


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


async def volume_cells(session: AsyncSession, scope: Scope, start: datetime, end: datetime) -> list[VolumeCell]:
    first_day, end_day, edges, params = period_edges(start, end, "at")
    sql = compose(
        """
        SELECT priority, sum(created)::bigint AS created, sum(resolved)::bigint AS resolved,
               sum(reopened)::bigint AS reopened, sum(cancelled)::bigint AS cancelled FROM (
            SELECT priority, created, resolved, reopened, cancelled FROM ticket_daily
            WHERE tenant_id = :tenant AND day >= :first_day AND day < :end_day$scope
            UNION ALL
            SELECT priority, (kind = 'created')::int, (kind = 'resolved')::int, (kind = 'reopened')::int,
                   (kind = 'cancelled')::int
            FROM ticket_transitions WHERE tenant_id = :tenant AND $edges$scope
        ) counted GROUP BY priority
        HAVING sum(created) + sum(resolved) + sum(reopened) + sum(cancelled) <> 0""",
        scope=scope.sql(),
        edges=edges,
    )
    rows = (await session.execute(sa.text(sql), scope.params(first_day=first_day, end_day=end_day, **params))).all()
    return [VolumeCell(r.priority, int(r.created), int(r.resolved), int(r.reopened), int(r.cancelled)) for r in rows]


async def backlog_at(session: AsyncSession, scope: Scope, instant: datetime) -> int:
    """Open tickets at `instant`: the sum of every backlog delta before it."""
    day = instant.astimezone(UTC).date()
    sql = compose(
        """
        SELECT coalesce((SELECT sum(open_delta) FROM ticket_daily
                         WHERE tenant_id = :tenant AND day < :day$scope), 0)
             + coalesce((SELECT sum(open_delta) FROM ticket_transitions
                         WHERE tenant_id = :tenant AND at >= :day_start AND at < :instant$scope), 0)""",
        scope=scope.sql(),
    )
    value = (
        await session.execute(
            sa.text(sql), scope.params(day=day, day_start=datetime.combine(day, time(0), tzinfo=UTC), instant=instant)
        )
    ).scalar()
    return int(value or 0)


async def csat_cells(
    session: AsyncSession, scope: Scope, start: datetime, end: datetime, satisfied_ratio: float
) -> list[CsatCell]:
    sql = compose(
        """
        SELECT service, count(*) AS answers,
               count(*) FILTER (WHERE score::numeric >= CAST(:ratio AS numeric) * scale) AS satisfied,
               sum(score::float8 / scale) AS ratio_sum
        FROM (SELECT DISTINCT ON (ticket_id) ticket_id, service, score, scale FROM feedback
              WHERE tenant_id = :tenant AND answered_at >= :start AND answered_at < :end$scope
              ORDER BY ticket_id, answered_at DESC, event_id DESC) latest
        GROUP BY service""",
        scope=scope.sql(),
    )
    rows = (
        await session.execute(sa.text(sql), scope.params(start=start, end=end, ratio=Decimal(str(satisfied_ratio))))
    ).all()
    return [CsatCell(r.service, int(r.answers), int(r.satisfied), float(r.ratio_sum)) for r in rows]


async def slo_statuses(
    session: AsyncSession, scope: Scope, start: datetime | None, end: datetime
) -> list[SloStatusRow]:
    """The last evaluation of each SLO with an event time in [start, end) (from the beginning if no start)."""
    lower = "AND evaluated_at >= :start" if start is not None else ""
    sql = compose(
        """SELECT DISTINCT ON (slo_id) * FROM slo_status
        WHERE tenant_id = :tenant $lower AND evaluated_at < :end$service_only
        ORDER BY slo_id, evaluated_at DESC""",
        lower=lower,
        service_only=scope.sql(customer=False),
    )
    rows = (await session.execute(sa.text(sql), scope.params(start=start, end=end))).all()
    return [
        SloStatusRow(
            r.slo_id,
            r.service,
            r.evaluated_at,
            r.window_start,
            r.window_end,
            r.sli_value,
            r.objective,
            r.good,
            r.total,
            r.error_budget_total,
            r.error_budget_remaining,
        )
        for r in rows
    ]


async def alert_rows(session: AsyncSession, scope: Scope, start: datetime, end: datetime) -> list[AlertRow]:
    service = ""
    if scope.service is not None:
        service = (
            " AND (service = :service OR slo_id IN (SELECT slo_id FROM slo_status"
            " WHERE tenant_id = :tenant AND service = :service))"
        )
    sql = compose(
        """SELECT slo_id, alert, count(*) FILTER (WHERE state = 'firing') AS fired,
               count(*) FILTER (WHERE state = 'resolved') AS resolved,
               min(at) FILTER (WHERE state = 'firing') AS first_fired_at,
               (array_agg(state ORDER BY at DESC))[1] AS last_state
        FROM slo_alerts WHERE tenant_id = :tenant AND at >= :start AND at < :end$service_filter
        GROUP BY slo_id, alert""",
        service_filter=service,
    )
    rows = (await session.execute(sa.text(sql), scope.params(start=start, end=end))).all()
    return [AlertRow(r.slo_id, r.alert, int(r.fired), int(r.resolved), r.first_fired_at, r.last_state) for r in rows]


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


async def event_ranges(
    session: AsyncSession, tenant: str, start: datetime, end: datetime
) -> tuple[list[EventRange], int]:
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    rows = (
        await session.execute(
            sa.text("""
        SELECT event_type, sum(events)::bigint AS events, min(first_event_time) AS first_event_time,
               max(last_event_time) AS last_event_time, min(first_received_at) AS first_received_at,
               max(last_received_at) AS last_received_at, sum(out_of_order)::bigint AS out_of_order,
               sum(after_close)::bigint AS after_close, sum(recalculations)::bigint AS recalculations
        FROM event_stats WHERE tenant_id = :tenant AND hour >= :hour AND hour < :end
        GROUP BY event_type"""),
            {"tenant": tenant, "hour": hour, "end": end},
        )
    ).all()
    ranges = [
        EventRange(
            r.event_type,
            int(r.events),
            r.first_event_time,
            r.last_event_time,
            r.first_received_at,
            r.last_received_at,
            int(r.out_of_order),
            int(r.after_close),
        )
        for r in rows
    ]
    recalculations = sum(int(r.recalculations) for r in rows if r.event_type == CLOCK_EVENT)
    return ranges, recalculations


async def recalculated_cycles(session: AsyncSession, scope: Scope, start: datetime, end: datetime) -> int:
    value = (
        await session.execute(
            sa.text(
                compose(
                    """SELECT count(*) FROM clock_outcomes
        WHERE tenant_id = :tenant AND recalculations > 0 AND stopped_at >= :start AND stopped_at < :end
        $scope""",
                    scope=scope.sql(),
                )
            ),
            scope.params(start=start, end=end),
        )
    ).scalar()
    return int(value or 0)


async def published_snapshots(
    session: AsyncSession, tenant: str, start: datetime, end: datetime, scope_key: str
) -> list[PublishedSnapshot]:
    rows = (
        await session.execute(
            sa.text("""SELECT report_id, revision, kind, created_at FROM report_snapshots
        WHERE tenant_id = :tenant AND period_start = :start AND period_end = :end AND scope_key = :scope_key
        ORDER BY revision"""),
            {"tenant": tenant, "start": start, "end": end, "scope_key": scope_key},
        )
    ).all()
    return [PublishedSnapshot(r.report_id, r.revision, r.kind, r.created_at) for r in rows]


async def pending_late_changes(session: AsyncSession, tenant: str, start: datetime) -> int:
    value = (
        await session.execute(
            sa.text("""SELECT count(*) FROM late_changes
        WHERE tenant_id = :tenant AND period_start = :start AND handled_at IS NULL"""),
            {"tenant": tenant, "start": start},
        )
    ).scalar()
    return int(value or 0)
