"""Reads of the tickets behind the report: volumes, the backlog at an instant, satisfaction (CSAT).

Volumes come from the daily rollups for the whole UTC days and the raw transitions for the partial edges; CSAT
counts each ticket's latest survey answer."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING

import sqlalchemy as sa

from reporting.domain.inputs import CsatCell, VolumeCell
from reporting.read_side.sql import compose, period_edges

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from reporting.read_side.sql import Scope


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
