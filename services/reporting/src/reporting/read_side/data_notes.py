"""Reads behind the report's data notes: event ranges, recalculations, published revisions, late changes."""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING

import sqlalchemy as sa

from reporting.domain.model import EventRange, PublishedSnapshot
from reporting.read_side.sql import compose
from slm_shared.events import CLOCK_EVENT

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

    from reporting.read_side.sql import Scope


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
