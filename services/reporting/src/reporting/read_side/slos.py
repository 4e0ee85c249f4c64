"""Reads of the SLOs behind the report and the dashboard: each SLO's last evaluation, its alerts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from reporting.domain.inputs import AlertRow, SloStatusRow
from reporting.read_side.sql import compose

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

    from reporting.read_side.sql import Scope


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
