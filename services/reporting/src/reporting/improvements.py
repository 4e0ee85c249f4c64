"""The improvement register over HTTP (`/v1/improvements`) and in SQL: entries with their trigger, the KPI they
aim at (a quality target's definition), its baseline measured on a period of data, the target value, owner, due
date and status; on completion the KPI is measured again (the period holding the completion, up to then:
provisional), and once more, automatically, when the first whole period after the completion closes
(`measure_after_close`: final; domain.improvements). Closing a period proposes an entry for every quality target
it missed (`propose_missed`); both run in the close's transaction. Read routes need the key scope `read`, changes
`config`."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Body, HTTPException, Query, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from reporting.domain.config import Comparison, Kpi, Name, QualityTarget, ReportingConfig, Text
from reporting.domain.improvements import (
    AT_CLOSE,
    AT_COMPLETION,
    Status,
    TransitionRefused,
    TriggerKind,
    check_transition,
    measures_after,
    proposals,
)
from reporting.domain.periods import Period, classify, period_containing, previous_periods
from reporting.domain.quality import QualityResult, measure
from reporting.handlers import Now
from reporting.quality import quality_facts
from reporting.reports import load_config
from reporting.review_tables import improvements
from slm_shared.auth import ConfigTenant, ReadTenant
from slm_shared.instants import utc_instant


class Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: TriggerKind
    ref: Name  # the id of what triggered it: "<target>@<period>", a ticket id, an SLO alert id, ...


class KpiSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kpi: Kpi
    service: Name | None = None
    customer: Name | None = None
    agreement: Name = "SLA"
    metric: Name | None = None
    slo_id: Name | None = None


class BaselinePeriod(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: AwareDatetime = Field(alias="from")
    end: AwareDatetime = Field(alias="to")


class NewImprovement(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Text
    trigger: Trigger
    kpi: KpiSpec
    target_value: float = Field(ge=0, le=1e12, allow_inf_nan=False)
    comparison: Comparison | None = None
    owner: Name | None = None
    due: date | None = None
    baseline_period: BaselinePeriod | None = None  # default: the last configured period that has ended


class ImprovementChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Status | None = None
    owner: Name | None = None
    due: date | None = None
    note: Text | None = None


def _target(spec: dict[str, Any], target_value: float, comparison: str | None) -> QualityTarget:
    return QualityTarget.model_validate({"id": "improvement", **spec, "threshold": target_value,
                                         "comparison": comparison})


def _period_json(period: Period, until: datetime | None = None, measured: str | None = None) -> dict[str, Any]:
    found = {"start": period.start.isoformat(), "end": (until or period.end).isoformat(), "label": period.label}
    return found if measured is None else {**found, "measured": measured}


async def measured(session: AsyncSession, tenant: str, target: QualityTarget, start: datetime, end: datetime,
                   config: ReportingConfig) -> float | None:
    value = measure(target, await quality_facts(session, tenant, start, end, config.csat_satisfied_ratio)).value
    return None if value is None else round(float(value), 2)


def _row(row: Any) -> dict[str, Any]:
    found = dict(row._mapping)
    found.pop("tenant_id", None)
    return {k: (v.isoformat() if isinstance(v, (datetime, date)) else v) for k, v in found.items()}


async def propose_missed(session: AsyncSession, tenant: str, period: Period, results: list[QualityResult],
                         now: datetime) -> int:
    """Proposed entries for the targets `period` missed; a trigger proposes once however often the close runs."""
    config_targets = {t.id: t for t in (await load_config(session, tenant))[0].quality_targets}
    created = 0
    for proposal in proposals(results, period.label):
        target = config_targets.get(proposal.target_id)
        if target is None:
            continue
        spec = target.model_dump(include={"kpi", "service", "customer", "agreement", "metric", "slo_id"})
        inserted = await session.execute(insert(improvements).values(
            tenant_id=tenant, improvement_id=f"IMP-{uuid.uuid4().hex[:10].upper()}", title=proposal.title,
            trigger_kind="missed_target", trigger_ref=proposal.trigger_ref, kpi=spec,
            target_value=proposal.target_value, comparison=proposal.comparison,
            baseline_period=_period_json(period), baseline_value=proposal.baseline_value, status="proposed",
            history=[{"at": now.isoformat(), "status": "proposed", "note": "proposed by the period close"}],
            created_at=now, updated_at=now,
        ).on_conflict_do_nothing(constraint="improvements_one_per_trigger"))
        created += inserted.rowcount or 0  # type: ignore[attr-defined]
    return created


async def measure_after_close(session: AsyncSession, tenant: str, period: Period, config: ReportingConfig,
                              now: datetime) -> int:
    """Measure, on the closing `period`, the after-value of every entry completed in the period before it (in the
    close's transaction). Returns how many entries it measured."""
    rows = (await session.execute(sa.select(improvements).where(
        improvements.c.tenant_id == tenant, improvements.c.status == "done").with_for_update())).all()
    measured_now = 0
    for row in rows:
        if not measures_after(row.status, row.history, row.after_period, period):
            continue
        target = _target(row.kpi, row.target_value, row.comparison)
        await session.execute(sa.update(improvements).where(
            improvements.c.tenant_id == tenant, improvements.c.improvement_id == row.improvement_id).values(
            after_period={**_period_json(period, measured=AT_CLOSE), "measured_at": now.isoformat()},
            after_value=await measured(session, tenant, target, period.start, period.end, config), updated_at=now))
        measured_now += 1
    return measured_now


def improvements_router(sessions: async_sessionmaker[AsyncSession], now: Now) -> APIRouter:
    router = APIRouter(prefix="/v1/improvements", tags=["improvements"])

    @router.post("", status_code=status.HTTP_201_CREATED, summary="Add an entry to the improvement register")
    async def create(tenant: ConfigTenant, entry: Annotated[NewImprovement, Body()]) -> dict[str, Any]:
        current = now()
        async with sessions() as session, session.begin():
            config, _ = await load_config(session, tenant)
            if entry.baseline_period is not None:
                start = utc_instant(entry.baseline_period.start, "from")
                end = utc_instant(entry.baseline_period.end, "to")
                if end <= start or end - start > timedelta(days=400):
                    raise HTTPException(status.HTTP_400_BAD_REQUEST, "baseline_period: `to` after `from`, ≤ 400 days")
                baseline = classify(start, end, config.timezone, config.period)
            else:
                [baseline] = previous_periods(period_containing(current, config.timezone, config.period), 1)
            target = _target(entry.kpi.model_dump(), entry.target_value, entry.comparison)
            value = await measured(session, tenant, target, baseline.start, baseline.end, config)
            improvement_id = f"IMP-{uuid.uuid4().hex[:10].upper()}"
            row = (await session.execute(insert(improvements).values(
                tenant_id=tenant, improvement_id=improvement_id, title=entry.title, trigger_kind=entry.trigger.kind,
                trigger_ref=entry.trigger.ref, kpi=entry.kpi.model_dump(), target_value=entry.target_value,
                comparison=target.effective_comparison, baseline_period=_period_json(baseline),
                baseline_value=value, owner=entry.owner, due=entry.due, status="open",
                history=[{"at": current.isoformat(), "status": "open", "note": None}],
                created_at=current, updated_at=current,
            ).on_conflict_do_nothing(constraint="improvements_one_per_trigger").returning(improvements))).first()
        if row is None:
            raise HTTPException(status.HTTP_409_CONFLICT, "an entry for this trigger exists already")
        return _row(row)

    @router.get("", summary="The improvement register, newest first")
    async def register(tenant: ReadTenant, status_filter: Annotated[Status | None, Query(alias="status")] = None,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict[str, Any]:
        query = sa.select(improvements).where(improvements.c.tenant_id == tenant)
        if status_filter is not None:
            query = query.where(improvements.c.status == status_filter)
        async with sessions() as session:
            rows = (await session.execute(query.order_by(improvements.c.created_at.desc(),
                                                         improvements.c.improvement_id).limit(limit))).all()
        return {"improvements": [_row(r) for r in rows]}

    @router.get("/{improvement_id}", summary="One entry of the register")
    async def one(tenant: ReadTenant, improvement_id: str) -> dict[str, Any]:
        async with sessions() as session:
            row = (await session.execute(sa.select(improvements).where(
                improvements.c.tenant_id == tenant, improvements.c.improvement_id == improvement_id))).first()
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such improvement")
        return _row(row)

    @router.patch("/{improvement_id}", summary="Change an entry's status, owner or due date")
    async def change(tenant: ConfigTenant, improvement_id: str,
                     patch: Annotated[ImprovementChange, Body()]) -> dict[str, Any]:
        """Done measures the KPI again on the configured period holding the completion, up to that instant."""
        current = now()
        async with sessions() as session, session.begin():
            row = (await session.execute(sa.select(improvements).where(
                improvements.c.tenant_id == tenant, improvements.c.improvement_id == improvement_id)
                .with_for_update())).first()
            if row is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "no such improvement")
            values: dict[str, Any] = {"updated_at": current}
            if patch.owner is not None:
                values["owner"] = patch.owner
            if patch.due is not None:
                values["due"] = patch.due
            new_status = patch.status or row.status
            try:
                check_transition(row.status, new_status)
            except TransitionRefused as refused:
                raise HTTPException(status.HTTP_409_CONFLICT, str(refused)) from refused
            if new_status != row.status or patch.note:
                values["status"] = new_status
                values["history"] = [*row.history, {"at": current.isoformat(), "status": new_status,
                                                    "note": patch.note}]
            if new_status == "done" and row.status != "done":
                config, _ = await load_config(session, tenant)
                after = period_containing(current, config.timezone, config.period)
                target = _target(row.kpi, row.target_value, row.comparison)
                values["after_period"] = _period_json(after, until=current, measured=AT_COMPLETION)
                values["after_value"] = await measured(session, tenant, target, after.start, current, config)
            updated = (await session.execute(sa.update(improvements).where(
                improvements.c.tenant_id == tenant, improvements.c.improvement_id == improvement_id)
                .values(**values).returning(improvements))).first()
        return _row(updated)

    return router


