"""Assembling the Service Level Report from its inputs: ratios, red/amber/green, summaries and trends."""

from __future__ import annotations

import re
from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import TYPE_CHECKING

from reporting.domain.live import live_breach, live_clock
from reporting.domain.model import (
    COUNTING_RULES,
    AlertCount,
    AttainmentRow,
    Breaches,
    BreachesByPriority,
    CalendarUsed,
    Csat,
    CsatService,
    CsatTrendPoint,
    DataNotes,
    ExecutiveSummary,
    Header,
    PolicyUsed,
    Ratio,
    ReportPeriod,
    ResponseResolutionTimes,
    Scope,
    ServiceLevelReport,
    ServiceSummary,
    SloRow,
    TargetSummary,
    TargetsUsed,
    TimeStats,
    TrendPoint,
    UnderpinningRow,
    VolumeRow,
    Volumes,
)

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from reporting.domain.config import RagStatus, ReportingConfig
    from reporting.domain.inputs import AlertRow, CsatCell, OutcomeCell, ReportInputs, SloStatusRow
    from reporting.domain.periods import Period

CUSTOMER_AGREEMENT = "SLA"
# Below a quarter of its error budget an SLO is amber: the usual "budget at risk" line of SRE practice.
SLO_AMBER_BUDGET_PERCENT = 25.0
_SEVERITY: dict[RagStatus, int] = {"no_data": 0, "green": 1, "amber": 2, "red": 3}


def ratio(numerator: int, denominator: int) -> Ratio:
    if denominator == 0:
        return Ratio(numerator, denominator, None)
    percent = (Decimal(100 * numerator) / Decimal(denominator)).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    return Ratio(numerator, denominator, float(percent))


def rag(numerator: int, denominator: int, target_percent: float, amber_margin: float) -> RagStatus:
    """Compared exactly (fractions), so 94.999 % is not rounded into a green 95 %."""
    if denominator == 0:
        return "no_data"
    achieved = Fraction(100 * numerator, denominator)
    target = Fraction(str(target_percent))
    if achieved >= target:
        return "green"
    if achieved >= target - Fraction(str(amber_margin)):
        return "amber"
    return "red"


def worst(statuses: Iterable[RagStatus]) -> RagStatus:
    found: RagStatus = "no_data"
    for status in statuses:
        if _SEVERITY[status] > _SEVERITY[found]:
            found = status
    return found


def priority_order(priority: str) -> tuple[str, int, str]:
    """P1 < P2 < P10: letters, then the number, then the rest."""
    match = re.match(r"^([A-Za-z]*)(\d+)(.*)$", priority)
    if match:
        return (match.group(1), int(match.group(2)), match.group(3))
    return (priority, 0, "")


def _met_breached(cells: Iterable[OutcomeCell]) -> tuple[int, int]:
    met = breached = 0
    for cell in cells:
        met += cell.met
        breached += cell.breached
    return met, breached


def _group(cells: Iterable[OutcomeCell], *dims: str) -> dict[tuple[str, ...], tuple[int, int]]:
    """(met, breached) per combination of `dims`."""
    grouped: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])
    for cell in cells:
        key = tuple(str(getattr(cell, d)) for d in dims)
        grouped[key][0] += cell.met
        grouped[key][1] += cell.breached
    return {k: (v[0], v[1]) for k, v in grouped.items()}


def _sort_key(key: tuple[str, ...]) -> tuple[object, ...]:
    return tuple(priority_order(part) for part in key)


def _header(inputs: ReportInputs, period: Period, config: ReportingConfig) -> Header:
    versions: dict[tuple[str, str], set[int]] = defaultdict(set)
    calendars: dict[str, set[str]] = defaultdict(set)
    for cell in inputs.cells:
        versions[(cell.policy_id, cell.agreement)].add(cell.policy_version)
        calendars[cell.calendar].add(f"{cell.policy_id}@{cell.policy_version}")
    return Header(
        tenant=inputs.tenant,
        scope=Scope(inputs.service, inputs.customer),
        period=ReportPeriod(period.start, period.end, period.timezone, period.kind, period.label),
        generated_at=inputs.generated_at,
        config_version=inputs.config_version,
        policies=[
            PolicyUsed(policy_id, agreement, sorted(v)) for (policy_id, agreement), v in sorted(versions.items())
        ],
        calendars=[CalendarUsed(name, sorted(v)) for name, v in sorted(calendars.items())],
        targets=TargetsUsed(
            config.default_target_percent,
            dict(sorted(config.metric_targets_percent.items())),
            config.amber_margin_percent,
        ),
        counting_rules=list(COUNTING_RULES),
        published=list(inputs.published),
    )


def target_summaries(cells: Iterable[OutcomeCell], config: ReportingConfig) -> list[TargetSummary]:
    """Customer SLA attainment per (metric, priority) against the metric's target."""
    sla = [c for c in cells if c.agreement == CUSTOMER_AGREEMENT]
    return [
        TargetSummary(
            agreement,
            metric,
            priority,
            ratio(m, m + b),
            config.target_for(metric),
            rag(m, m + b, config.target_for(metric), config.amber_margin_percent),
        )
        for (agreement, metric, priority), (m, b) in sorted(
            _group(sla, "agreement", "metric", "priority").items(), key=lambda item: _sort_key(item[0])
        )
    ]


def overall_attainment(cells: Iterable[OutcomeCell], config: ReportingConfig) -> tuple[Ratio, RagStatus]:
    """All customer SLA cycles together; the status is the worst of the per-metric statuses."""
    sla = [c for c in cells if c.agreement == CUSTOMER_AGREEMENT]
    met, breached = _met_breached(sla)
    status = worst(
        rag(m, m + b, config.target_for(metric), config.amber_margin_percent)
        for (metric,), (m, b) in _group(sla, "metric").items()
    )
    return ratio(met, met + breached), status


def _summary(inputs: ReportInputs, config: ReportingConfig) -> ExecutiveSummary:
    sla = [c for c in inputs.cells if c.agreement == CUSTOMER_AGREEMENT]
    overall, overall_status = overall_attainment(sla, config)
    services: list[ServiceSummary] = []
    by_service_metric = _group(sla, "service", "metric")
    for (service,), (m, b) in sorted(_group(sla, "service").items()):
        status = worst(
            rag(mm, mm + bb, config.target_for(metric), config.amber_margin_percent)
            for (s, metric), (mm, bb) in by_service_metric.items()
            if s == service
        )
        services.append(ServiceSummary(service, ratio(m, m + b), status))
    return ExecutiveSummary(
        overall=overall,
        overall_status=overall_status,
        breached_cycles=overall.denominator - overall.numerator,
        open_breaches=sum(1 for c in inputs.open_breaches if c.agreement == CUSTOMER_AGREEMENT),
        services=services,
        targets=target_summaries(sla, config),
    )


def _attainment(inputs: ReportInputs, period: Period, config: ReportingConfig) -> list[AttainmentRow]:
    dims = ("agreement", "metric", "priority")
    current = _group(inputs.cells, *dims)
    history = [(p, _group(p.cells, *dims)) for p in inputs.trend]
    keys = set(current)
    rows = []
    for key in sorted(keys, key=_sort_key):
        agreement, metric, priority = key
        met, breached = current[key]
        trend = [
            TrendPoint(p.label, p.start, p.end, ratio(*_attained(grouped.get(key, (0, 0))))) for p, grouped in history
        ]
        trend.append(TrendPoint(period.label, period.start, period.end, ratio(met, met + breached)))
        target = config.target_for(metric)
        rows.append(
            AttainmentRow(
                agreement,
                metric,
                priority,
                met,
                breached,
                ratio(met, met + breached),
                target,
                rag(met, met + breached, target, config.amber_margin_percent),
                trend,
            )
        )
    return rows


def _attained(pair: tuple[int, int]) -> tuple[int, int]:
    return pair[0], pair[0] + pair[1]


def report_instant(inputs: ReportInputs, period: Period) -> datetime:
    """The instant running clocks are shown at: the period's end, or now for a period not over yet."""
    return min(inputs.generated_at, period.end)


def _breaches(inputs: ReportInputs, at: datetime) -> Breaches:
    by_priority = [
        BreachesByPriority(agreement, priority, b, m + b, ratio(b, m + b))
        for (agreement, priority), (m, b) in sorted(
            _group(inputs.cells, "agreement", "priority").items(), key=lambda item: _sort_key(item[0])
        )
    ]
    tickets = sorted(
        inputs.breached, key=lambda c: (-c.over_target_seconds, c.ticket_id, c.policy_id, c.metric, c.cycle)
    )
    open_breaches = sorted(
        (live_breach(c, at, inputs.calendars) for c in inputs.open_breaches),
        key=lambda c: (-c.over_target_seconds, c.ticket_id, c.policy_id, c.metric, c.cycle),
    )
    return Breaches(by_priority, tickets, open_breaches)


def _times(inputs: ReportInputs) -> ResponseResolutionTimes:
    rows = sorted(inputs.times, key=lambda t: (t.agreement, t.metric, t.priority != "all", priority_order(t.priority)))

    def overall(metric: str) -> TimeStats | None:
        return next(
            (t for t in rows if t.agreement == CUSTOMER_AGREEMENT and t.metric == metric and t.priority == "all"), None
        )

    return ResponseResolutionTimes(mtta=overall("response"), mttr=overall("resolution"), rows=rows)


def _volumes(inputs: ReportInputs) -> Volumes:
    rows = sorted(inputs.volumes, key=lambda v: priority_order(v.priority))
    created = sum(v.created for v in rows)
    resolved = sum(v.resolved for v in rows)
    reopened = sum(v.reopened for v in rows)
    cancelled = sum(v.cancelled for v in rows)
    return Volumes(
        created,
        resolved,
        reopened,
        cancelled,
        inputs.backlog_at_start,
        inputs.backlog_at_end,
        ratio(reopened, resolved),
        [VolumeRow(v.priority, v.created, v.resolved, v.reopened, v.cancelled) for v in rows],
    )


def slo_status(row: SloStatusRow) -> RagStatus:
    """Red below objective or out of budget, amber under a quarter of the budget left, else green."""
    if row.sli_value is None or row.total == 0:
        return "no_data"
    if row.sli_value < row.objective or (row.error_budget_total > 0 and row.error_budget_remaining <= 0):
        return "red"
    if (
        row.error_budget_total > 0
        and 100 * row.error_budget_remaining / row.error_budget_total < SLO_AMBER_BUDGET_PERCENT
    ):
        return "amber"
    return "green"


def slo_rows(statuses: Iterable[SloStatusRow], alert_rows: Iterable[AlertRow]) -> list[SloRow]:
    alerts: dict[str, list[AlertCount]] = defaultdict(list)
    for alert in sorted(alert_rows, key=lambda a: (a.slo_id, a.alert)):
        alerts[alert.slo_id].append(
            AlertCount(alert.alert, alert.fired, alert.resolved, alert.first_fired_at, alert.last_state)
        )
    rows = []
    for status in sorted(statuses, key=lambda s: (s.service, s.slo_id)):
        remaining = None
        if status.error_budget_total > 0:
            remaining = round(100 * status.error_budget_remaining / status.error_budget_total, 2)
        rows.append(
            SloRow(
                status.slo_id,
                status.service,
                status.evaluated_at,
                status.window_start,
                status.window_end,
                status.sli_value,
                status.objective,
                status.good,
                status.total,
                status.error_budget_total,
                status.error_budget_remaining,
                remaining,
                slo_status(status),
                alerts.pop(status.slo_id, []),
            )
        )
    return rows


def _csat_score(cells: Iterable[CsatCell]) -> tuple[int, int, float]:
    answers = satisfied = 0
    ratio_sum = 0.0
    for cell in cells:
        answers += cell.answers
        satisfied += cell.satisfied
        ratio_sum += cell.score_ratio_sum
    return answers, satisfied, ratio_sum


def _csat(inputs: ReportInputs, period: Period, resolved: int) -> Csat:
    answers, satisfied, ratio_sum = _csat_score(inputs.csat)
    mean = round(100 * ratio_sum / answers, 2) if answers else None
    by_service = [
        CsatService(c.service, ratio(c.satisfied, c.answers)) for c in sorted(inputs.csat, key=lambda c: c.service)
    ]
    trend = []
    for past in inputs.trend:
        a, s, _ = _csat_score(past.csat)
        trend.append(CsatTrendPoint(past.label, past.start, past.end, ratio(s, a)))
    trend.append(CsatTrendPoint(period.label, period.start, period.end, ratio(satisfied, answers)))
    return Csat(ratio(satisfied, answers), mean, ratio(inputs.answered_tickets, resolved), by_service, trend)


def _underpinning(inputs: ReportInputs, config: ReportingConfig) -> list[UnderpinningRow]:
    cells = [c for c in inputs.cells if c.agreement != CUSTOMER_AGREEMENT]
    links: dict[tuple[str, ...], int] = {
        (link.agreement, link.policy_id, link.metric): link.tickets for link in inputs.underpinning_links
    }
    keys = set(_group(cells, "agreement", "policy_id", "metric")) | set(links)
    grouped = _group(cells, "agreement", "policy_id", "metric")
    rows = []
    for key in sorted(keys):
        agreement, policy_id, metric = key
        met, breached = grouped.get(key, (0, 0))
        target = config.target_for(metric)
        rows.append(
            UnderpinningRow(
                agreement,
                policy_id,
                metric,
                met,
                breached,
                ratio(met, met + breached),
                target,
                rag(met, met + breached, target, config.amber_margin_percent),
                ratio(links.get(key, 0), inputs.sla_breached_tickets),
            )
        )
    return rows


def _data_notes(inputs: ReportInputs) -> DataNotes:
    out_of_order = sum(r.out_of_order for r in inputs.event_ranges)
    after_close = sum(r.after_close for r in inputs.event_ranges)
    notes = []
    if not inputs.event_ranges:
        notes.append("No events with an event time in this period were received.")
    if out_of_order:
        notes.append(
            f"{out_of_order} events arrived out of order (older than one already applied); the counting "
            "rules make the result the same as in-order delivery."
        )
    if after_close:
        notes.append(
            f"{after_close} events arrived after the period was closed; they are reported as amendments "
            "of the published snapshot, which itself never changes."
        )
    if inputs.pending_late_events:
        notes.append(f"{inputs.pending_late_events} late events are waiting for the next amendment.")
    if inputs.recalculations:
        notes.append(
            f"{inputs.recalculations} recalculations replaced the outcome of {inputs.recalculated_cycles} "
            "clock cycles in this period."
        )
    if inputs.clocks_truncated:
        notes.append("The `clocks` list is truncated; use the CSV export or a narrower scope for every cycle.")
    return DataNotes(
        sorted(inputs.event_ranges, key=lambda r: r.event_type),
        out_of_order,
        after_close,
        inputs.recalculations,
        inputs.recalculated_cycles,
        notes,
    )


def assemble(inputs: ReportInputs, period: Period, config: ReportingConfig) -> ServiceLevelReport:
    """The report of `period`, a pure function of its inputs and the tenant's reporting configuration."""
    volumes = _volumes(inputs)
    at = report_instant(inputs, period)
    return ServiceLevelReport(
        header=_header(inputs, period, config),
        summary=_summary(inputs, config),
        attainment=_attainment(inputs, period, config),
        breaches=_breaches(inputs, at),
        times=_times(inputs),
        volumes=volumes,
        slos=slo_rows(inputs.slo_statuses, inputs.alerts),
        csat=_csat(inputs, period, volumes.resolved),
        ola_uc=_underpinning(inputs, config),
        data_notes=_data_notes(inputs),
        clocks=[live_clock(c, at, inputs.calendars) for c in inputs.clocks],
        clocks_truncated=inputs.clocks_truncated,
        quality=list(inputs.quality),
    )
