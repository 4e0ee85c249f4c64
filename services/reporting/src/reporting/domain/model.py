"""The Service Level Report's canonical structure (what `format=json` returns; its JSON schema is generated).

Every rate is a `Ratio` with its numerator and denominator, so a reader can check each figure by hand.
Seconds are business seconds of the clocks' calendars, integers (floor), as in DESIGN section 4.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from reporting.domain.config import RagStatus
from reporting.domain.quality import QualityResult

SCHEMA_ID = "slm.reporting.service-level-report/1"

COUNTING_RULES = (
    "A clock cycle counts in the period in which it stopped (its stopped_at), as met or breached.",
    "Attainment = met cycles / (met + breached cycles); a period without stopped cycles has no attainment.",
    "Cycles still running or paused at the end of the period are not counted; those already breached are "
    "listed separately under breaches.open_breaches.",
    "Cancelled cycles count nowhere: neither met nor breached, nor in the times.",
    "Each cycle is as the SLA engine's event with the highest sequence says, whatever the arrival order "
    "(events without a sequence: the latest by event time wins, a `recalculated` one replaces it).",
    "Response and resolution times are the elapsed business seconds of stopped cycles of SLA policies; "
    "median and p90 are nearest-rank percentiles; the mean is floored to whole seconds.",
    "Volumes count ticket state changes whose event time is in the period: created, resolved (open to "
    "resolved/closed), reopened (resolved/closed back to open), cancelled; backlog = open tickets at an instant.",
    "Reopen rate = reopens / resolutions in the period.",
    "CSAT: the latest answer per ticket in the period; satisfied when score/scale reaches the configured ratio; "
    "response rate = answered tickets / resolutions in the period.",
    "SLOs: the last evaluation whose event time is in the period; alerts counted by event time.",
    "Red/amber/green: green at or above the target, amber within the amber margin below it, red under that.",
    "A published snapshot never changes: events that arrive after a period was closed produce an amendment.",
)


@dataclass(frozen=True)
class Ratio:
    numerator: int
    denominator: int
    percent: float | None  # 100 * numerator / denominator, rounded half-even to 2 decimals; null when 0/0


@dataclass(frozen=True)
class ReportPeriod:
    start: datetime
    end: datetime
    timezone: str
    kind: Literal["monthly", "weekly", "custom"]
    label: str


@dataclass(frozen=True)
class Scope:
    service: str | None
    customer: str | None


@dataclass(frozen=True)
class PolicyUsed:
    policy_id: str
    agreement: str
    versions: list[int]


@dataclass(frozen=True)
class CalendarUsed:
    name: str
    policy_versions: list[str]  # "policy_id@version" that computed clocks with this calendar


@dataclass(frozen=True)
class TargetsUsed:
    default_percent: float
    per_metric_percent: dict[str, float]
    amber_margin_percent: float


@dataclass(frozen=True)
class PublishedSnapshot:
    report_id: str
    revision: int
    kind: Literal["original", "amendment"]
    created_at: datetime


@dataclass(frozen=True)
class Header:
    tenant: str
    scope: Scope
    period: ReportPeriod
    generated_at: datetime
    config_version: int
    policies: list[PolicyUsed]
    calendars: list[CalendarUsed]
    targets: TargetsUsed
    counting_rules: list[str]
    published: list[PublishedSnapshot]


@dataclass(frozen=True)
class ServiceSummary:
    service: str
    attainment: Ratio
    status: RagStatus


@dataclass(frozen=True)
class TargetSummary:
    agreement: str
    metric: str
    priority: str
    attainment: Ratio
    target_percent: float
    status: RagStatus


@dataclass(frozen=True)
class ExecutiveSummary:
    overall: Ratio
    overall_status: RagStatus
    breached_cycles: int
    open_breaches: int
    services: list[ServiceSummary]
    targets: list[TargetSummary]


@dataclass(frozen=True)
class TrendPoint:
    label: str
    start: datetime
    end: datetime
    attainment: Ratio


@dataclass(frozen=True)
class AttainmentRow:
    agreement: str
    metric: str
    priority: str
    met: int
    breached: int
    attainment: Ratio
    target_percent: float
    status: RagStatus
    trend: list[TrendPoint]  # the previous 6 periods, oldest first, then this one


@dataclass(frozen=True)
class BreachesByPriority:
    agreement: str
    priority: str
    breached: int
    counted: int
    breach_share: Ratio  # breached / counted cycles of this priority


@dataclass(frozen=True)
class BreachedCycle:
    ticket_id: str
    policy_id: str
    policy_version: int
    agreement: str
    metric: str
    cycle: int
    priority: str
    service: str
    customer: str
    state: str
    target_seconds: int
    elapsed_seconds: int
    over_target_seconds: int
    over_target_percent: float | None
    breached_at: datetime | None
    stopped_at: datetime | None
    calendar: str = ""
    as_of: datetime | None = None  # the instant the stored values hold (the cycle's last transition)
    live: bool = False  # elapsed and over-target brought forward to the report's instant (domain.live)


@dataclass(frozen=True)
class Breaches:
    by_priority: list[BreachesByPriority]
    tickets: list[BreachedCycle]  # stopped breached cycles of the period, most over target first
    open_breaches: list[BreachedCycle]  # running or paused at the period end, already breached


@dataclass(frozen=True)
class TimeStats:
    agreement: str
    metric: str
    priority: str  # "all" for every priority together
    count: int
    sum_seconds: int
    mean_seconds: int | None
    median_seconds: int | None
    p90_seconds: int | None


@dataclass(frozen=True)
class ResponseResolutionTimes:
    mtta: TimeStats | None  # SLA response cycles, every priority
    mttr: TimeStats | None  # SLA resolution cycles, every priority
    rows: list[TimeStats]


@dataclass(frozen=True)
class VolumeRow:
    priority: str
    created: int
    resolved: int
    reopened: int
    cancelled: int


@dataclass(frozen=True)
class Volumes:
    created: int
    resolved: int
    reopened: int
    cancelled: int
    backlog_at_start: int
    backlog_at_end: int
    reopen_rate: Ratio
    by_priority: list[VolumeRow]


@dataclass(frozen=True)
class AlertCount:
    alert: str
    fired: int
    resolved: int
    first_fired_at: datetime | None
    last_state: str | None


@dataclass(frozen=True)
class SloRow:
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
    error_budget_remaining_percent: float | None
    status: RagStatus
    alerts: list[AlertCount]


@dataclass(frozen=True)
class CsatService:
    service: str
    score: Ratio


@dataclass(frozen=True)
class CsatTrendPoint:
    label: str
    start: datetime
    end: datetime
    score: Ratio


@dataclass(frozen=True)
class Csat:
    score: Ratio  # satisfied / answers
    mean_score_percent: float | None  # mean of score/scale, in percent
    response_rate: Ratio  # answered tickets / resolutions
    by_service: list[CsatService]
    trend: list[CsatTrendPoint]


@dataclass(frozen=True)
class UnderpinningRow:
    agreement: str  # OLA | UC
    policy_id: str
    metric: str
    met: int
    breached: int
    attainment: Ratio
    target_percent: float
    status: RagStatus
    sla_breaches_also_breached_here: Ratio  # SLA-breached tickets of the period that breached this OLA/UC too


@dataclass(frozen=True)
class EventRange:
    event_type: str
    events: int
    first_event_time: datetime | None
    last_event_time: datetime | None
    first_received_at: datetime | None
    last_received_at: datetime | None
    out_of_order: int
    after_close: int


@dataclass(frozen=True)
class DataNotes:
    events: list[EventRange]  # by event time, in the whole UTC hours that overlap the period
    out_of_order_events: int
    late_events_after_close: int
    recalculations: int
    recalculated_cycles: int
    notes: list[str]


@dataclass(frozen=True)
class ClockRow:
    ticket_id: str
    policy_id: str
    policy_version: int
    agreement: str
    metric: str
    cycle: int
    state: str
    breached: bool
    elapsed_seconds: int
    target_seconds: int
    started_at: datetime | None
    stopped_at: datetime | None
    breached_at: datetime | None
    due_at: datetime | None
    service: str
    customer: str
    priority: str
    calendar: str = ""
    as_of: datetime | None = None  # the instant the stored values hold (the cycle's last transition)
    remaining_seconds: int | None = None  # target - elapsed, negative over target
    percent: float | None = None  # 100 * elapsed / target
    live: bool = False  # values brought forward to the report's instant (domain.live)


@dataclass(frozen=True)
class Amendment:
    amends: str
    revision: int
    changes: list[Change]
    late_events: int


@dataclass(frozen=True)
class Change:
    path: str
    before: str | int | float | bool | None
    after: str | int | float | bool | None


@dataclass(frozen=True)
class ServiceLevelReport:
    header: Header
    summary: ExecutiveSummary
    attainment: list[AttainmentRow]
    breaches: Breaches
    times: ResponseResolutionTimes
    volumes: Volumes
    slos: list[SloRow]
    csat: Csat
    ola_uc: list[UnderpinningRow]
    data_notes: DataNotes
    clocks: list[ClockRow]  # cycles counted in the period and cycles running at its end (up to clocks_limit)
    clocks_truncated: bool
    schema: str = SCHEMA_ID
    amendment: Amendment | None = None
    sections: list[str] = field(
        default_factory=lambda: [
            "header",
            "summary",
            "attainment",
            "breaches",
            "times",
            "volumes",
            "slos",
            "csat",
            "ola_uc",
            "quality",
            "data_notes",
        ]
    )
    quality: list[QualityResult] = field(default_factory=list)  # service quality targets (domain.quality)
