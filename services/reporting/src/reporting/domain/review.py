"""The service review pack (ISO/IEC 20000-1 8.3.3, service level management's periodic review): a pure
assembly of the period's Service Level Report, the per-service attainment of the two periods before it, the
workload against agreed limits, the quality targets, customer satisfaction with its complaints, the
experience-versus-SLA view, the improvement register's movements, the distribution and the approval.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from fractions import Fraction
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from reporting.domain.assemble import CUSTOMER_AGREEMENT, overall_attainment, ratio
from reporting.domain.config import RagStatus, ReportingConfig, WorkloadLimit
from reporting.domain.improvements import AT_CLOSE
from reporting.domain.model import (
    CalendarUsed,
    PolicyUsed,
    PublishedSnapshot,
    Ratio,
    ReportPeriod,
    ServiceLevelReport,
    SloRow,
    TargetsUsed,
    UnderpinningRow,
)
from reporting.domain.quality import QualityFacts, QualityResult
from reporting.domain.satisfaction import Satisfaction

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from reporting.domain.inputs import OutcomeCell

SCHEMA_ID = "slm.reporting.service-review/1"


@dataclass(frozen=True)
class Banner:
    tenant: str
    customer: str | None
    period: ReportPeriod
    generated_at: datetime
    config_version: int
    policies: list[PolicyUsed]
    calendars: list[CalendarUsed]
    targets: TargetsUsed


@dataclass(frozen=True)
class PeriodAttainment:
    label: str
    attainment: Ratio
    status: RagStatus


@dataclass(frozen=True)
class ServiceAttainment:
    service: str
    status: RagStatus  # this period's
    trend: list[PeriodAttainment]  # the two periods before, then this one


@dataclass(frozen=True)
class WorkloadRow:
    service: str | None
    customer: str | None
    created: int
    limit: int
    over_limit: bool
    exception: bool  # a target of this scope was missed while the workload was over the limit
    note: str | None


@dataclass(frozen=True)
class ExperienceRow:
    service: str
    sla_attainment: Ratio
    sla_status: RagStatus
    csat_satisfied: Ratio
    reopen_rate: Ratio
    flagged: bool  # a green SLA with unhappy customers
    reasons: list[str]


@dataclass(frozen=True)
class ImprovementItem:
    """An entry of the improvement register: as stored (`movement` None), and as a review lists it (`movement`
    set, from `created_at` and `history`, which the review document leaves out)."""

    improvement_id: str
    title: str
    trigger_kind: str
    trigger_ref: str
    kpi: dict[str, Any]
    status: str
    movement: str | None  # opened | progressed | closed | carried (open, untouched in the period) | measured
    owner: str | None
    due: date | None
    target_value: float
    comparison: str
    baseline_value: float | None
    after_value: float | None
    # Where the after-value was measured: {start, end, label, measured: "at completion" | "at close"}.
    after_period: dict[str, Any] | None = None
    created_at: Annotated[datetime, Field(exclude=True)] = field(kw_only=True)
    history: Annotated[list[dict[str, Any]], Field(exclude=True)] = field(kw_only=True)


@dataclass(frozen=True)
class Approval:
    approved_by: str
    approved_at: datetime
    comment: str | None
    content_sha256: str


@dataclass(frozen=True)
class Delivered:
    """Who a published report went to, as the delivery log says (a `report_published` notification rule)."""

    rule_id: str
    channel: str
    recipients: list[str]
    status: str  # pending | retrying | sent | suppressed | dead
    delivered_at: datetime | None  # when the channel took it
    attempts: int
    reason: str | None = None  # why it was suppressed, or the last error


@dataclass(frozen=True)
class DistributedReport:
    """A published snapshot of the period and its distribution."""

    report_id: str
    revision: int
    kind: str
    created_at: datetime
    deliveries: list[Delivered] = field(default_factory=list)


@dataclass(frozen=True)
class ServiceReview:
    banner: Banner
    sla: list[ServiceAttainment]
    workload: list[WorkloadRow]
    ola_uc: list[UnderpinningRow]
    slos: list[SloRow]
    quality: list[QualityResult]
    satisfaction: Satisfaction
    complaints_by_status: dict[str, int]
    experience: list[ExperienceRow]
    improvements: list[ImprovementItem]
    distribution: list[DistributedReport]
    schema: str = SCHEMA_ID
    approval: Approval | None = None
    notes: list[str] = field(default_factory=list)


def service_attainment(cells: Sequence[OutcomeCell], config: ReportingConfig) -> dict[str, tuple[Ratio, RagStatus]]:
    by_service: dict[str, list[OutcomeCell]] = defaultdict(list)
    for cell in cells:
        if cell.agreement == CUSTOMER_AGREEMENT:
            by_service[cell.service].append(cell)
    return {service: overall_attainment(mine, config) for service, mine in by_service.items()}


def _sla(
    current: Sequence[OutcomeCell],
    history: Sequence[tuple[str, Sequence[OutcomeCell]]],
    label: str,
    config: ReportingConfig,
) -> list[ServiceAttainment]:
    periods = [
        *((lbl, service_attainment(cells, config)) for lbl, cells in history),
        (label, service_attainment(current, config)),
    ]
    services = sorted({s for _, found in periods for s in found})
    rows = []
    for service in services:
        trend = [PeriodAttainment(lbl, *found.get(service, (ratio(0, 0), "no_data"))) for lbl, found in periods]
        rows.append(ServiceAttainment(service, trend[-1].status, trend))
    return rows


def _matches(limit: WorkloadLimit, service: str | None, customer: str | None) -> bool:
    return (limit.service is None or limit.service == service) and (
        limit.customer is None or limit.customer == customer
    )


def _workload(
    limits: Sequence[WorkloadLimit],
    created: Mapping[tuple[str, str], int],
    sla: list[ServiceAttainment],
    quality: Sequence[QualityResult],
    customer: str | None,
) -> list[WorkloadRow]:
    rows = []
    for limit in limits:
        if customer is not None and limit.customer not in (None, customer):
            continue
        count = sum(n for (service, cust), n in created.items() if _matches(limit, service, cust))
        over = count > limit.tickets_per_period
        missed_sla = any(s.status in ("red", "amber") for s in sla if limit.service in (None, s.service))
        missed_target = any(
            q.status == "missed"
            for q in quality
            if limit.service in (None, q.service) and limit.customer in (None, q.customer)
        )
        exception = over and (missed_sla or missed_target)
        note = None
        if exception:
            note = (
                f"{count} tickets against an agreed limit of {limit.tickets_per_period}: targets missed in "
                "this period are an exception under the agreement."
            )
        elif over:
            note = f"{count} tickets against an agreed limit of {limit.tickets_per_period}; every target held."
        rows.append(WorkloadRow(limit.service, limit.customer, count, limit.tickets_per_period, over, exception, note))
    return rows


def _experience(
    report: ServiceLevelReport, facts: QualityFacts, config: ReportingConfig, customer: str | None
) -> list[ExperienceRow]:
    satisfied_at = Fraction(str(config.csat_satisfied_ratio))
    rows = []
    for line in report.summary.services:
        answers = [a for a in facts.answers if a.service == line.service and customer in (None, a.customer)]
        resolved = sum(
            r.resolved for r in facts.resolutions if r.service == line.service and customer in (None, r.customer)
        )
        reopened = sum(
            r.reopened for r in facts.reopens if r.service == line.service and customer in (None, r.customer)
        )
        csat = ratio(sum(1 for a in answers if Fraction(a.score, a.scale) >= satisfied_at), len(answers))
        reopen = ratio(reopened, resolved)
        reasons = []
        if line.status == "green":
            if csat.denominator and Fraction(100 * csat.numerator, csat.denominator) < Fraction(
                str(config.experience_min_satisfied_percent)
            ):
                reasons.append(f"CSAT {csat.percent} % satisfied, under {config.experience_min_satisfied_percent:g} %")
            if reopen.denominator and Fraction(100 * reopen.numerator, reopen.denominator) > Fraction(
                str(config.experience_max_reopen_percent)
            ):
                reasons.append(f"reopen rate {reopen.percent} %, over {config.experience_max_reopen_percent:g} %")
        rows.append(ExperienceRow(line.service, line.attainment, line.status, csat, reopen, bool(reasons), reasons))
    return rows


def delivery_order(deliveries: Sequence[Delivered]) -> list[Delivered]:
    """A report's deliveries as the distribution record lists them: by rule, then channel."""
    return sorted(deliveries, key=lambda d: (d.rule_id, d.channel))


def _distributed(snapshot: PublishedSnapshot, deliveries: Sequence[Delivered]) -> DistributedReport:
    return DistributedReport(
        snapshot.report_id, snapshot.revision, snapshot.kind, snapshot.created_at, delivery_order(deliveries)
    )


def movement(record: ImprovementItem, start: datetime, end: datetime) -> str | None:
    """What happened to an entry in [start, end); None when it was closed before or opened after. `measured`: done
    before, its after-value measured on this very period at its close."""
    if record.created_at >= end:
        return None
    after = record.after_period or {}
    if (
        record.status == "done"
        and after.get("measured") == AT_CLOSE
        and (datetime.fromisoformat(after["start"]), datetime.fromisoformat(after["end"])) == (start, end)
    ):
        return "measured"
    inside = [h for h in record.history if start <= datetime.fromisoformat(h["at"]) < end]
    if any(h["status"] in ("done", "cancelled") for h in inside):
        return "closed"
    if start <= record.created_at:
        return "opened"
    if record.status in ("done", "cancelled"):
        return None
    return "progressed" if inside else "carried"


def assemble_review(
    report: ServiceLevelReport,
    history: Sequence[tuple[str, Sequence[OutcomeCell]]],
    current_cells: Sequence[OutcomeCell],
    created: Mapping[tuple[str, str], int],
    quality: list[QualityResult],
    facts: QualityFacts,
    satisfaction: Satisfaction,
    complaints_by_status: dict[str, int],
    improvements: Sequence[ImprovementItem],
    config: ReportingConfig,
    deliveries: Mapping[str, Sequence[Delivered]] | None = None,
) -> ServiceReview:
    """`deliveries`: per published report id, its notifications (the distribution record)."""
    header = report.header
    customer = header.scope.customer
    sla = _sla(current_cells, history, header.period.label, config)
    items = []
    for record in sorted(improvements, key=lambda r: (r.created_at, r.improvement_id)):
        moved = movement(record, header.period.start, header.period.end)
        if moved is not None:
            items.append(replace(record, movement=moved))
    notes = [row.note for row in satisfaction.rows if row.note]
    return ServiceReview(
        banner=Banner(
            header.tenant,
            customer,
            header.period,
            header.generated_at,
            header.config_version,
            header.policies,
            header.calendars,
            header.targets,
        ),
        sla=sla,
        workload=_workload(config.workload_limits, created, sla, quality, customer),
        ola_uc=report.ola_uc,
        slos=report.slos,
        quality=quality,
        satisfaction=satisfaction,
        complaints_by_status=complaints_by_status,
        experience=_experience(report, facts, config, customer),
        improvements=items,
        distribution=[_distributed(p, (deliveries or {}).get(p.report_id, ())) for p in header.published],
        notes=sorted(set(notes)),
    )
