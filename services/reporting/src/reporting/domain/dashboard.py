"""The live dashboard's content: what is breached now, what is about to be, this period so far, SLO budgets."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from reporting.domain.assemble import overall_attainment, slo_rows, target_summaries
from reporting.domain.config import RagStatus, ReportingConfig
from reporting.domain.live import Calendars, live_breach, live_clock
from reporting.domain.model import BreachedCycle, ClockRow, Ratio, SloRow, TargetSummary
from reporting.domain.quality import QualityResult

if TYPE_CHECKING:
    from reporting.domain.inputs import OutcomeCell, SloStatusRow
    from reporting.domain.periods import Period


@dataclass(frozen=True)
class DashboardView:
    tenant: str
    now: datetime
    timezone: str
    period_label: str
    period_start: datetime
    horizon_seconds: int
    default_target_percent: float
    overall: Ratio
    overall_status: RagStatus
    attainment: list[TargetSummary]
    breaches: list[BreachedCycle]
    about_to_breach: list[ClockRow]
    slos: list[SloRow]
    language: str = "en"  # the tenant's configured language (a request's ?lang= or Accept-Language wins)
    quality: list[QualityResult] = field(default_factory=list)  # the targets on the period so far


def dashboard(
    tenant: str,
    now: datetime,
    period: Period,
    config: ReportingConfig,
    cells: list[OutcomeCell],
    breaches: list[BreachedCycle],
    about_to_breach: list[ClockRow],
    statuses: list[SloStatusRow],
    quality: list[QualityResult] | None = None,
    calendars: Calendars | None = None,
) -> DashboardView:
    overall, status = overall_attainment(cells, config)
    return DashboardView(
        tenant=tenant,
        now=now,
        timezone=config.timezone,
        period_label=period.label,
        period_start=period.start,
        horizon_seconds=config.dashboard_horizon_seconds,
        default_target_percent=config.default_target_percent,
        overall=overall,
        overall_status=status,
        attainment=target_summaries(cells, config),
        breaches=sorted(
            (live_breach(c, now, calendars or {}) for c in breaches),
            key=lambda c: (-c.over_target_seconds, c.ticket_id),
        ),
        about_to_breach=[live_clock(c, now, calendars or {}) for c in about_to_breach],
        slos=slo_rows(statuses, []),
        language=config.language,
        quality=list(quality or []),
    )
