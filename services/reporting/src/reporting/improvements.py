"""The improvement register in SQL (its HTTP routes: reporting.improvement_api): entries with their trigger, the
KPI they aim at (a quality target's definition), its baseline measured on a period of data, the target value, owner, due
date and status; on completion the KPI is measured again (the period holding the completion, up to then:
provisional), and once more, automatically, when the first whole period after the completion closes
(`measure_after_close`: final; domain.improvements). Closing a period proposes an entry for every quality target
it missed (`propose_missed`); both run in the close's transaction. `SqlImprovementRegister` is the unit of work's
`improvements`. Read routes need the key scope `read`, changes `config`."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from reporting.domain.config import QualityTarget, ReportingConfig
from reporting.domain.improvements import (
    AT_CLOSE,
    measures_after,
    proposals,
)
from reporting.domain.quality import QualityResult, measure
from reporting.quality import quality_facts
from reporting.read_side.config import load_config
from reporting.review_tables import improvements

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from reporting.domain.periods import Period


def target_of(spec: dict[str, Any], target_value: float, comparison: str | None) -> QualityTarget:
    return QualityTarget.model_validate(
        {"id": "improvement", **spec, "threshold": target_value, "comparison": comparison}
    )


def period_json(period: Period, until: datetime | None = None, measured: str | None = None) -> dict[str, Any]:
    found = {"start": period.start.isoformat(), "end": (until or period.end).isoformat(), "label": period.label}
    return found if measured is None else {**found, "measured": measured}


def shown(row: Any) -> dict[str, Any]:
    found = dict(row._mapping)
    found.pop("tenant_id", None)
    return {k: (v.isoformat() if isinstance(v, (datetime, date)) else v) for k, v in found.items()}


class SqlImprovementRegister:
    """The improvement register's entries, in the unit of work's transaction; never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def measured(
        self, tenant: str, target: QualityTarget, start: datetime, end: datetime, config: ReportingConfig
    ) -> float | None:
        """The entry's KPI measured on [start, end), rounded as the register shows it."""
        facts = await quality_facts(self._session, tenant, start, end, config.csat_satisfied_ratio)
        value = measure(target, facts).value
        return None if value is None else round(float(value), 2)

    async def propose_missed(self, tenant: str, period: Period, results: list[QualityResult], now: datetime) -> int:
        """Proposed entries for the targets `period` missed; a trigger proposes once however often the close runs."""
        config_targets = {t.id: t for t in (await load_config(self._session, tenant))[0].quality_targets}
        created = 0
        for proposal in proposals(results, period.label):
            target = config_targets.get(proposal.target_id)
            if target is None:
                continue
            spec = target.model_dump(include={"kpi", "service", "customer", "agreement", "metric", "slo_id"})
            inserted = await self._session.execute(
                insert(improvements)
                .values(
                    tenant_id=tenant,
                    improvement_id=f"IMP-{uuid.uuid4().hex[:10].upper()}",
                    title=proposal.title,
                    trigger_kind="missed_target",
                    trigger_ref=proposal.trigger_ref,
                    kpi=spec,
                    target_value=proposal.target_value,
                    comparison=proposal.comparison,
                    baseline_period=period_json(period),
                    baseline_value=proposal.baseline_value,
                    status="proposed",
                    history=[{"at": now.isoformat(), "status": "proposed", "note": "proposed by the period close"}],
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(constraint="improvements_one_per_trigger")
            )
            created += inserted.rowcount or 0  # type: ignore[attr-defined]
        return created

    async def measure_after_close(self, tenant: str, period: Period, config: ReportingConfig, now: datetime) -> int:
        """Measure, on the closing `period`, the after-value of every entry completed in the period before it.
        Returns how many entries it measured."""
        rows = (
            await self._session.execute(
                sa.select(improvements)
                .where(improvements.c.tenant_id == tenant, improvements.c.status == "done")
                .with_for_update()
            )
        ).all()
        measured_now = 0
        for row in rows:
            if not measures_after(row.status, row.history, row.after_period, period):
                continue
            target = target_of(row.kpi, row.target_value, row.comparison)
            await self._session.execute(
                sa.update(improvements)
                .where(improvements.c.tenant_id == tenant, improvements.c.improvement_id == row.improvement_id)
                .values(
                    after_period={**period_json(period, measured=AT_CLOSE), "measured_at": now.isoformat()},
                    after_value=await self.measured(tenant, target, period.start, period.end, config),
                    updated_at=now,
                )
            )
            measured_now += 1
        return measured_now

    async def add(self, values: dict[str, Any]) -> Any:
        """A new entry of the register; None when its trigger has one already."""
        return (
            await self._session.execute(
                insert(improvements)
                .values(**values)
                .on_conflict_do_nothing(constraint="improvements_one_per_trigger")
                .returning(improvements)
            )
        ).first()

    async def entries(self, tenant: str, status: str | None, limit: int) -> list[Any]:
        """The register, newest first (in one status when given)."""
        query = sa.select(improvements).where(improvements.c.tenant_id == tenant)
        if status is not None:
            query = query.where(improvements.c.status == status)
        return list(
            (
                await self._session.execute(
                    query.order_by(improvements.c.created_at.desc(), improvements.c.improvement_id).limit(limit)
                )
            ).all()
        )

    async def entry_of(self, tenant: str, improvement_id: str, lock: bool = False) -> Any:
        """One entry, or None; locked until the transaction ends when `lock`."""
        query = sa.select(improvements).where(
            improvements.c.tenant_id == tenant, improvements.c.improvement_id == improvement_id
        )
        return (await self._session.execute(query.with_for_update() if lock else query)).first()

    async def update(self, tenant: str, improvement_id: str, values: dict[str, Any]) -> Any:
        return (
            await self._session.execute(
                sa.update(improvements)
                .where(improvements.c.tenant_id == tenant, improvements.c.improvement_id == improvement_id)
                .values(**values)
                .returning(improvements)
            )
        ).first()
