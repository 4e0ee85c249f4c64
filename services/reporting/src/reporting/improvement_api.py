"""The improvement register over HTTP (`/v1/improvements`): add, list, read and change entries (reporting.improvements
holds them: the unit of work's `improvements`). Read routes need the key scope `read`, changes `config`."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from reporting.domain.config import Comparison, Kpi, Name, Text
from reporting.domain.improvements import (
    AT_COMPLETION,
    Entry,
    RequestedChange,
    Status,
    TransitionRefused,
    TriggerKind,
    change_entry,
)
from reporting.domain.periods import classify, period_containing, previous_periods
from reporting.improvements import period_json, shown, target_of
from reporting.unit_of_work import Units
from slm_shared.auth import ConfigTenant, ReadTenant
from slm_shared.instants import utc_instant
from slm_shared.time_source import Now


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


def improvements_router(units: Units, now: Now) -> APIRouter:
    router = APIRouter(prefix="/v1/improvements", tags=["improvements"])

    @router.post("", status_code=status.HTTP_201_CREATED, summary="Add an entry to the improvement register")
    async def create(tenant: ConfigTenant, entry: Annotated[NewImprovement, Body()]) -> dict[str, Any]:
        current = now()
        async with units() as uow:
            config, _ = await uow.configs.load(tenant)
            if entry.baseline_period is not None:
                start = utc_instant(entry.baseline_period.start, "from")
                end = utc_instant(entry.baseline_period.end, "to")
                if end <= start or end - start > timedelta(days=400):
                    raise HTTPException(status.HTTP_400_BAD_REQUEST, "baseline_period: `to` after `from`, ≤ 400 days")
                baseline = classify(start, end, config.timezone, config.period)
            else:
                [baseline] = previous_periods(period_containing(current, config.timezone, config.period), 1)
            target = target_of(entry.kpi.model_dump(), entry.target_value, entry.comparison)
            value = await uow.improvements.measured(tenant, target, baseline.start, baseline.end, config)
            improvement_id = f"IMP-{uuid.uuid4().hex[:10].upper()}"
            row = await uow.improvements.add(
                {
                    "tenant_id": tenant,
                    "improvement_id": improvement_id,
                    "title": entry.title,
                    "trigger_kind": entry.trigger.kind,
                    "trigger_ref": entry.trigger.ref,
                    "kpi": entry.kpi.model_dump(),
                    "target_value": entry.target_value,
                    "comparison": target.effective_comparison,
                    "baseline_period": period_json(baseline),
                    "baseline_value": value,
                    "owner": entry.owner,
                    "due": entry.due,
                    "status": "open",
                    "history": [{"at": current.isoformat(), "status": "open", "note": None}],
                    "created_at": current,
                    "updated_at": current,
                },
            )
            await uow.commit()
        if row is None:
            raise HTTPException(status.HTTP_409_CONFLICT, "an entry for this trigger exists already")
        return shown(row)

    @router.get("", summary="The improvement register, newest first")
    async def register(
        tenant: ReadTenant,
        status_filter: Annotated[Status | None, Query(alias="status")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> dict[str, Any]:
        async with units() as uow:
            await uow.read_only()
            rows = await uow.improvements.entries(tenant, status_filter, limit)
        return {"improvements": [shown(r) for r in rows]}

    @router.get("/{improvement_id}", summary="One entry of the register")
    async def one(tenant: ReadTenant, improvement_id: str) -> dict[str, Any]:
        async with units() as uow:
            await uow.read_only()
            row = await uow.improvements.entry_of(tenant, improvement_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such improvement")
        return shown(row)

    @router.patch("/{improvement_id}", summary="Change an entry's status, owner or due date")
    async def change(
        tenant: ConfigTenant, improvement_id: str, patch: Annotated[ImprovementChange, Body()]
    ) -> dict[str, Any]:
        """Done measures the KPI again on the configured period holding the completion, up to that instant."""
        current = now()
        async with units() as uow:
            row = await uow.improvements.entry_of(tenant, improvement_id, lock=True)
            if row is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "no such improvement")
            try:
                changed = change_entry(
                    Entry(row.status, row.owner, row.due, tuple(row.history)),
                    RequestedChange(patch.status, patch.owner, patch.due, patch.note),
                    current,
                )
            except TransitionRefused as refused:
                raise HTTPException(status.HTTP_409_CONFLICT, str(refused)) from refused
            values: dict[str, Any] = {"updated_at": current, **changed.fields}
            if changed.completed:
                config, _ = await uow.configs.load(tenant)
                after = period_containing(current, config.timezone, config.period)
                target = target_of(row.kpi, row.target_value, row.comparison)
                values["after_period"] = period_json(after, until=current, measured=AT_COMPLETION)
                values["after_value"] = await uow.improvements.measured(tenant, target, after.start, current, config)
            updated = await uow.improvements.update(tenant, improvement_id, values)
            await uow.commit()
        return shown(updated)

    return router
