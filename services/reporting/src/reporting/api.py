"""Reporting's HTTP routes: the Service Level Report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Query, status
from pydantic import AwareDatetime
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from reporting import tables
from slm_shared.runtime import Tenant


def report_router(sessions: async_sessionmaker[AsyncSession]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["reports"])

    @router.get("/reports/slr")
    async def service_level_report(
        tenant: Tenant,
        start: AwareDatetime | None = Query(None, alias="from"),
        end: AwareDatetime | None = Query(None, alias="to"),
        service: str | None = None,
        customer: str | None = None,
        format: Literal["json"] = "json",
    ) -> dict[str, Any]:
        """Clock outcomes of the period: a cycle counts in the period in which it stopped."""
        end = end or datetime.now(UTC)
        start = start or end - timedelta(days=30)
        if end <= start:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "`to` must be after `from`")
        t = tables.clock_outcomes
        condition = [t.c.tenant_id == tenant]
        if service:
            condition.append(t.c.service == service)
        if customer:
            condition.append(t.c.customer == customer)
        in_period = sa.or_(
            sa.and_(t.c.stopped_at >= start, t.c.stopped_at < end),
            sa.and_(t.c.stopped_at.is_(None), t.c.started_at < end),
        )
        async with sessions() as session:
            rows = (await session.execute(sa.select(t).where(*condition, in_period).order_by(
                t.c.ticket_id, t.c.policy_id, t.c.metric, t.c.cycle))).mappings().all()
        clocks = [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()
                   if k not in ("tenant_id", "updated_at")} for row in rows]
        return {"tenant": tenant, "period": {"from": start.isoformat(), "to": end.isoformat()},
                "scope": {"service": service, "customer": customer}, "clocks": clocks}

    return router
