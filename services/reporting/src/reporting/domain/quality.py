"""Service quality targets evaluated for one period: pure functions of the period's facts.

The facts are the tenant's rows of the period (survey answers, resolutions with the actions before them,
reopens, tickets open at the end, stopped clock cycles, SLO evaluations), each with its service and customer;
every target picks the rows of its own scope. Rates are compared exactly (fractions), as the report's
red/amber/green is, so 94.999 % never passes a 95 % target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from reporting.domain.config import QualityTarget

TargetStatus = Literal["met", "missed", "insufficient_data", "no_data"]
KPI_NAMES = {
    "csat_mean": "CSAT mean score (% of scale)",
    "csat_satisfied": "CSAT satisfied answers",
    "reopen_rate": "reopen rate",
    "first_contact_resolution": "first-contact resolution",
    "backlog_age_p90": "backlog age p90",
    "breach_rate": "breach rate",
    "sla_attainment": "SLA attainment",
    "slo_attainment": "SLO attainment (SLI)",
}


@dataclass(frozen=True)
class Answer:
    ticket_id: str
    service: str
    customer: str | None
    score: int
    scale: int
    answered_at: datetime
    comment: str | None = None
    complaint: bool = False  # marked a complaint by the survey or by a person


@dataclass(frozen=True)
class Resolutions:
    """Resolutions of the period in one service and customer, and how many of them were first contact
    (`first_contact` below, applied to each resolution's timeline by the read)."""

    service: str
    customer: str
    resolved: int
    first_contact: int


@dataclass(frozen=True)
class Reopens:
    service: str
    customer: str
    reopened: int


@dataclass(frozen=True)
class OpenTicket:
    ticket_id: str
    service: str
    customer: str
    created_at: datetime


@dataclass(frozen=True)
class CycleCount:
    service: str
    customer: str
    agreement: str
    metric: str
    met: int
    breached: int


@dataclass(frozen=True)
class SloValue:
    slo_id: str
    service: str
    sli_value: float | None
    good: float
    total: float


@dataclass(frozen=True)
class QualityFacts:
    """Everything the targets of one period are measured on."""

    end: datetime
    satisfied_ratio: float
    start: datetime | None = None
    answers: list[Answer] = field(default_factory=list)
    resolutions: list[Resolutions] = field(default_factory=list)
    reopens: list[Reopens] = field(default_factory=list)
    open_at_end: list[OpenTicket] = field(default_factory=list)
    cycles: list[CycleCount] = field(default_factory=list)
    slos: list[SloValue] = field(default_factory=list)


@dataclass(frozen=True)
class Measure:
    value: Fraction | None  # percent, or seconds for backlog_age_p90
    numerator: int | float
    denominator: int | float
    sample: int  # answers, resolutions, cycles, open tickets or SLO evaluations it was measured on


@dataclass(frozen=True)
class TargetTrendPoint:
    label: str
    value: float | None
    status: TargetStatus
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class QualityResult:
    target_id: str
    kpi: str
    service: str | None
    customer: str | None
    standard: str  # the threshold and its comparison, in words: "reopen rate <= 5 %"
    comparison: str
    threshold: float
    unit: Literal["%", "s"]
    value: float | None  # rounded half-even to 2 decimals for display; judged on the exact value
    numerator: int | float
    denominator: int | float
    sample: int
    min_sample: int
    status: TargetStatus
    trend: list[TargetTrendPoint] = field(default_factory=list)  # earlier periods, oldest first, then this one


def unit_of(kpi: str) -> Literal["%", "s"]:
    """A KPI's unit: seconds for the backlog age, percent for every other."""
    return "s" if kpi == "backlog_age_p90" else "%"


def first_contact(actions: Sequence[str]) -> bool:
    """Resolved with no customer reply after the first agent reply (and never reopened before it): the rule
    the read (`reporting.quality.FIRST_CONTACT_SQL`) applies to every resolution's timeline in SQL."""
    replied = False
    for action in actions:
        if action == "agent_replied":
            replied = True
        elif (action == "customer_replied" and replied) or action == "reopened":
            return False
    return True


def nearest_rank(values: Sequence[int], p: Fraction) -> int | None:
    """The ceil(p*n)-th smallest value (PostgreSQL percentile_disc), as the report's p90 is."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(p * len(ordered)), 1) - 1]


def _in_scope(target: QualityTarget, service: str, customer: str | None) -> bool:
    return (target.service is None or target.service == service) and (
        target.customer is None or target.customer == customer
    )


def _percent(numerator: int, denominator: int) -> Fraction | None:
    return Fraction(100 * numerator, denominator) if denominator else None


def measure(target: QualityTarget, facts: QualityFacts) -> Measure:
    kpi = target.kpi
    if kpi in ("csat_mean", "csat_satisfied"):
        answers = [a for a in facts.answers if _in_scope(target, a.service, a.customer)]
        if kpi == "csat_mean":
            total = sum((Fraction(a.score, a.scale) for a in answers), Fraction(0))
            value = 100 * total / len(answers) if answers else None
            return Measure(value, float(total), len(answers), len(answers))
        satisfied = sum(1 for a in answers if Fraction(a.score, a.scale) >= Fraction(str(facts.satisfied_ratio)))
        return Measure(_percent(satisfied, len(answers)), satisfied, len(answers), len(answers))
    if kpi in ("reopen_rate", "first_contact_resolution"):
        mine = [r for r in facts.resolutions if _in_scope(target, r.service, r.customer)]
        resolved = sum(r.resolved for r in mine)
        if kpi == "reopen_rate":
            reopened = sum(r.reopened for r in facts.reopens if _in_scope(target, r.service, r.customer))
            return Measure(_percent(reopened, resolved), reopened, resolved, resolved)
        first = sum(r.first_contact for r in mine)
        return Measure(_percent(first, resolved), first, resolved, resolved)
    if kpi == "backlog_age_p90":
        ages = [
            int((facts.end - t.created_at).total_seconds())
            for t in facts.open_at_end
            if _in_scope(target, t.service, t.customer)
        ]
        p90 = nearest_rank(ages, Fraction(9, 10))
        return Measure(None if p90 is None else Fraction(p90), p90 or 0, len(ages), len(ages))
    if kpi in ("breach_rate", "sla_attainment"):
        met = breached = 0
        for cycle in facts.cycles:
            if (
                cycle.agreement == target.agreement
                and (target.metric is None or cycle.metric == target.metric)
                and _in_scope(target, cycle.service, cycle.customer)
            ):
                met += cycle.met
                breached += cycle.breached
        counted = met + breached
        if kpi == "breach_rate":
            return Measure(_percent(breached, counted), breached, counted, counted)
        return Measure(_percent(met, counted), met, counted, counted)
    # slo_attainment: SLOs are per service, so a customer does not narrow them (counting rule 9).
    slos = [
        s
        for s in facts.slos
        if (target.slo_id is None or s.slo_id == target.slo_id)
        and (target.service is None or s.service == target.service)
        and s.sli_value is not None
    ]
    if len(slos) == 1:
        return Measure(Fraction(str(slos[0].sli_value)), slos[0].good, slos[0].total, 1)
    good = sum((s.good for s in slos), 0.0)
    events = sum((s.total for s in slos), 0.0)
    value = 100 * Fraction(str(good)) / Fraction(str(events)) if events else None
    return Measure(value, good, events, len(slos))


def judge(target: QualityTarget, found: Measure) -> TargetStatus:
    if found.value is None or found.sample == 0:
        return "no_data"
    if found.sample < target.min_sample:
        return "insufficient_data"
    threshold = Fraction(str(target.threshold))
    passed = found.value >= threshold if target.effective_comparison == ">=" else found.value <= threshold
    return "met" if passed else "missed"


def standard(target: QualityTarget) -> str:
    unit = f" {unit_of(target.kpi)}"
    scope = ", ".join(
        f"{name} {value}" for name, value in (("service", target.service), ("customer", target.customer)) if value
    )
    what = KPI_NAMES[target.kpi]
    if target.kpi in ("breach_rate", "sla_attainment"):
        what += f" ({target.agreement}{' ' + target.metric if target.metric else ''})"
    if target.kpi == "slo_attainment" and target.slo_id:
        what += f" ({target.slo_id})"
    threshold = f"{target.threshold:g}"
    sample = f", at least {target.min_sample} in the sample" if target.min_sample > 1 else ""
    return f"{what} {target.effective_comparison} {threshold}{unit}{(' for ' + scope) if scope else ''}{sample}"


def _display(value: Fraction | None) -> float | None:
    return None if value is None else round(float(value), 2)


def evaluate(
    targets: Iterable[QualityTarget],
    facts: QualityFacts,
    label: str = "",
    history: Sequence[tuple[str, QualityFacts]] = (),
) -> list[QualityResult]:
    """Each target on this period's facts (`label`), with its value and status in the earlier periods
    (`history`, oldest first) and then this one as its trend."""
    results = []
    for target in targets:
        found = measure(target, facts)
        status = judge(target, found)
        trend = []
        for past_label, past in history:
            earlier = measure(target, past)
            trend.append(
                TargetTrendPoint(past_label, _display(earlier.value), judge(target, earlier), past.start, past.end)
            )
        trend.append(TargetTrendPoint(label, _display(found.value), status, facts.start, facts.end))
        results.append(
            QualityResult(
                target.id,
                target.kpi,
                target.service,
                target.customer,
                standard(target),
                target.effective_comparison,
                target.threshold,
                unit_of(target.kpi),
                _display(found.value),
                found.numerator,
                found.denominator,
                found.sample,
                target.min_sample,
                status,
                trend,
            )
        )
    return results
