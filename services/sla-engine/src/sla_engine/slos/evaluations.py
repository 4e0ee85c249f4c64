"""Each SLO's last evaluation: the status last published and the alerts firing, locked per SLO while a pass
judges what changed; never commits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from sla_engine import tables
from sla_engine.ports import StoredEvaluation

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession


class SqlSloEvaluationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

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
