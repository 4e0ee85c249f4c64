"""The sla-engine's HTTP routes: configuration, explained clocks, recalculation, what-if, SLO status and
OpenSLO conversion. Reading needs a key with the `read` scope; applying, recalculating, simulating and
converting configuration need `config`."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel

from sla_engine.bundles.cache import BundleCache
from sla_engine.bundles.lifecycle import ConfigService
from sla_engine.domain.bundle import BundleError
from sla_engine.domain.bundle.openslo import import_openslo
from sla_engine.domain.clocks import Clock, evaluate_ticket
from sla_engine.domain.recalculation import Recalculation, RecalculationReport
from sla_engine.ports import EngineUnits
from sla_engine.slos.handlers import SloKeeper, SloReading
from slm_shared.auth import ConfigTenant, ReadTenant
from slm_shared.instants import utc_instant
from slm_shared.request_guard import BodyLimits
from slm_shared.time_source import Now

MAX_BUNDLE_BYTES = 1024 * 1024

RecalculationMode = Annotated[Recalculation, Query()]


def body_limits(default: int) -> BodyLimits:
    """Bundles up to 1 MiB; `/v1/simulate` carries one as a JSON string, which at worst doubles its newlines
    and quotes (`\\n`, `\\"`)."""
    return BodyLimits(
        default,
        {
            "/v1/config:apply": MAX_BUNDLE_BYTES,
            "/v1/config:import-openslo": MAX_BUNDLE_BYTES,
            "/v1/simulate": 2 * MAX_BUNDLE_BYTES + 4096,
        },
    )


def plain(value: Any) -> Any:
    """Dataclasses, datetimes and enums as JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return value


def report_body(report: RecalculationReport) -> dict[str, Any]:
    return {
        "mode": report.mode,
        "from_version": report.from_version,
        "version": report.to_version,
        "tickets_considered": report.tickets_considered,
        "clocks_changed": [plain(change) for change in report.clocks_changed],
    }


def bundle_error_response(error: BundleError) -> JSONResponse:
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": "invalid bundle; nothing was changed", "errors": [plain(e) for e in error.errors]},
    )


class RecalculateRequest(BaseModel):
    mode: Literal["ongoing", "all"]


class SimulateRequest(BaseModel):
    bundle: str
    format: Literal["yaml", "json"] = "yaml"
    start: AwareDatetime
    end: AwareDatetime


async def _bundle_text(request: Request) -> tuple[str, Literal["yaml", "json"]]:
    body = await request.body()
    if len(body) > MAX_BUNDLE_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "bundle larger than 1 MiB")
    try:
        text = body.decode()
    except UnicodeDecodeError as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "bundle must be UTF-8 text") from error
    content_type = request.headers.get("content-type", "")
    return text, "json" if "json" in content_type else "yaml"


def sla_router(units: EngineUnits, bundles: BundleCache, config: ConfigService, slos: SloKeeper, now: Now) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["sla"])

    @router.post("/config:apply", response_model=None)
    async def apply_config(
        request: Request, tenant: ConfigTenant, recalculate: RecalculationMode = "none"
    ) -> dict[str, Any] | JSONResponse:
        """Apply a YAML or JSON bundle as a new version; `recalculate` = none | ongoing | all.

        A bad bundle changes nothing and answers 422 naming each wrong field and its line.
        """
        text, content_type = await _bundle_text(request)
        try:
            report = await config.apply(tenant, text, content_type, recalculate, now())
        except BundleError as error:
            return bundle_error_response(error)
        return report_body(report)

    @router.get("/config")
    async def get_config(tenant: ReadTenant) -> dict[str, Any]:
        async with units() as uow:
            latest = await uow.bundles.latest_config(tenant)
        if latest is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no configuration applied yet")
        return {
            "version": latest.version,
            "created_at": latest.created_at.isoformat(),
            "bundle": latest.bundle,
            "source": latest.source_text,
        }

    @router.post("/recalculate")
    async def recalculate(body: RecalculateRequest, tenant: ConfigTenant) -> dict[str, Any]:
        """Move `ongoing` or `all` tickets to the latest configuration; returns which clocks changed."""
        return report_body(await config.recalculate(tenant, body.mode, now()))

    @router.post("/simulate", response_model=None)
    async def simulate(body: SimulateRequest, tenant: ConfigTenant) -> dict[str, Any] | JSONResponse:
        """What-if: replay the tickets active in [start, end) under a draft bundle; emits nothing."""
        start, end = utc_instant(body.start, "start"), utc_instant(body.end, "end")
        if end <= start:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "end must be after start")
        if len(body.bundle.encode("utf-8", "surrogatepass")) > MAX_BUNDLE_BYTES:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "bundle larger than 1 MiB")
        try:
            return await config.simulate(tenant, body.bundle, body.format, start, end, now())
        except BundleError as error:
            return bundle_error_response(error)

    @router.get("/tickets/{ticket_id}/clocks")
    async def ticket_clocks(ticket_id: str, tenant: ReadTenant, at: AwareDatetime | None = None) -> dict[str, Any]:
        """Every clock of the ticket as it stood at `at` (default now), with its explained timeline."""
        instant = utc_instant(at, "at") if at else now()
        async with units() as uow:  # never committed: a read never pins
            timeline = await uow.tickets.timeline(tenant, ticket_id)
            if not timeline:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown ticket")
            pinned = await uow.bundles.config_for_ticket(tenant, ticket_id, timeline[0].time)
        if pinned is None:
            return {"ticket_id": ticket_id, "at": instant.isoformat(), "clocks": []}

        def evaluate() -> list[Clock]:  # CPU: off the event loop, so heartbeats and other requests go on
            return evaluate_ticket(timeline, bundles.get(pinned), policy_version=pinned.version, at=instant)

        try:
            clocks = await asyncio.to_thread(evaluate)
        except ValueError as error:  # an instant outside the calendars' supported years
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"at: {error}") from error
        return {
            "ticket_id": ticket_id,
            "at": instant.isoformat(),
            "config_version": pinned.version,
            "clocks": [plain(clock) for clock in clocks],
        }

    @router.get("/slos")
    async def list_slos(tenant: ReadTenant) -> dict[str, Any]:
        """Every SLO of the tenant's latest configuration, evaluated now (docs/slo.md, HTTP)."""
        version, readings = await slos.readings(tenant)
        return {"config_version": version, "at": now().isoformat(), "slos": [slo_body(r) for r in readings]}

    @router.get("/slos/{slo_id}")
    async def get_slo(slo_id: str, tenant: ReadTenant) -> dict[str, Any]:
        """One SLO evaluated now: SLI, objective, window, error budget, burn rates, projection, firing alerts."""
        version, readings = await slos.readings(tenant, slo_id)
        if not readings:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no SLO {slo_id!r} in the latest configuration")
        return {"config_version": version, **slo_body(readings[0])}

    @router.post("/config:import-openslo", response_model=None)
    async def import_openslo_documents(request: Request, tenant: ConfigTenant) -> dict[str, Any] | JSONResponse:
        """Convert OpenSLO v1/v1alpha `SLO`/`SLI` YAML to the bundle's `slos:` section; applies nothing.

        Fields not carried over come back as `notes`; anything that cannot be represented answers 422 with
        `errors` (each with its path), never a silent drop."""
        text, _ = await _bundle_text(request)
        imported = await asyncio.to_thread(import_openslo, text)
        if imported.errors:
            return JSONResponse(
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                content={
                    "detail": "the OpenSLO documents cannot be represented; nothing was converted",
                    "errors": imported.errors,
                    "notes": imported.unsupported,
                },
            )
        return {
            "slos": imported.entries,
            "yaml": yaml.safe_dump({"slos": imported.entries}, sort_keys=False),
            "notes": imported.unsupported,
        }

    return router


def slo_body(reading: SloReading) -> dict[str, Any]:
    """An SLO's status for HTTP: percents for the SLI and objective, the budget in the SLI's unit (seconds of
    availability, events, or slices), burn rates per lookback, and the alerts firing now."""
    status_now = reading.status
    return {
        "slo_id": reading.slo.id,
        "service": reading.slo.service,
        "sli": plain(reading.entry.get("sli")),
        "objective": float(status_now.objective),
        "window": plain(reading.entry.get("window")),
        "budgeting": reading.slo.budgeting,
        "at": status_now.at.isoformat(),
        "window_start": status_now.window_start.isoformat(),
        "window_end": status_now.window_end.isoformat(),
        "sli_value": None if status_now.sli_value is None else float(status_now.sli_value * 100),
        "good": float(status_now.good),
        "total": float(status_now.total),
        "error_budget": {
            "total": float(status_now.error_budget_total),
            "consumed": float(status_now.error_budget_consumed),
            "remaining": float(status_now.error_budget_remaining),
        },
        "burn_rates": {name: None if rate is None else float(rate) for name, rate in status_now.burn_rates().items()},
        "exhaustion_at": status_now.exhaustion_at.isoformat() if status_now.exhaustion_at else None,
        "alerts": [
            {
                "alert": alert.alert,
                "burn_rate": None if alert.burn_rate is None else float(alert.burn_rate),
                "windows": plain(dict(alert.windows)),
            }
            for alert in reading.alerts.values()
        ],
    }
