"""What the report is assembled from: aggregates the repository reads from the rollups and read models."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from reporting.domain.live import Calendars
from reporting.domain.model import BreachedCycle, ClockRow, EventRange, PublishedSnapshot, TimeStats
from reporting.domain.quality import QualityResult


@dataclass(frozen=True)
class OutcomeCell:
    """Stopped cycles of one combination of dimensions in a period (met and breached only)."""

    service: str
    customer: str  # the scope's customer, "*" for all
    agreement: str
    policy_id: str
    policy_version: int
    calendar: str
    metric: str
    priority: str
    met: int
    breached: int


@dataclass(frozen=True)
class VolumeCell:
    priority: str
    created: int
    resolved: int
    reopened: int
    cancelled: int


@dataclass(frozen=True)
class CsatCell:
    service: str
    answers: int
    satisfied: int
    score_ratio_sum: float  # sum of score/scale over the answers


@dataclass(frozen=True)
class SloStatusRow:
    slo_id: str
    service: str
    evaluated_at: datetime
    window_start: datetime
    window_end: datetime
    sli_value: float | None
    objective: float
    good: float
    total: float
    error_budget_total: float
    error_budget_remaining: float


@dataclass(frozen=True)
class AlertRow:
    slo_id: str
    alert: str
    fired: int
    resolved: int
    first_fired_at: datetime | None
    last_state: str | None


@dataclass(frozen=True)
class UnderpinningLink:
    """SLA-breached tickets of the period that also breached an OLA/UC (policy, metric)."""

    agreement: str
    policy_id: str
    metric: str
    tickets: int


@dataclass(frozen=True)
class PeriodOutcomes:
    label: str
    start: datetime
    end: datetime
    cells: list[OutcomeCell]
    csat: list[CsatCell]


@dataclass(frozen=True)
class ReportInputs:
    tenant: str
    service: str | None
    customer: str | None
    generated_at: datetime
    config_version: int
    cells: list[OutcomeCell]
    trend: list[PeriodOutcomes]  # previous periods, oldest first
    breached: list[BreachedCycle]
    open_breaches: list[BreachedCycle]
    times: list[TimeStats]
    volumes: list[VolumeCell]
    backlog_at_start: int
    backlog_at_end: int
    csat: list[CsatCell]
    answered_tickets: int
    slo_statuses: list[SloStatusRow]
    alerts: list[AlertRow]
    sla_breached_tickets: int
    underpinning_links: list[UnderpinningLink]
    event_ranges: list[EventRange]
    recalculations: int
    recalculated_cycles: int
    clocks: list[ClockRow]
    clocks_truncated: bool
    published: list[PublishedSnapshot] = field(default_factory=list)
    pending_late_events: int = 0
    quality: list[QualityResult] = field(default_factory=list)  # evaluated by domain.quality
    # The calendars the engine announced, for bringing running clocks to the report's instant (domain.live).
    calendars: Calendars = field(default_factory=dict)
