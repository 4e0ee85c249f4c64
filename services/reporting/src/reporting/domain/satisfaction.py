"""Customer satisfaction per service and customer, its verbatims and the complaint log: pure functions of a
period's survey answers (domain.quality.Answer, the latest per ticket), its resolutions and the handling
records people keep for complaints.

Response rate = answers / resolutions of the same service and customer in the period: every resolved ticket
is taken as offered a survey (the events do not say which were). A row whose answers or response rate fall
under the configured minimums carries a representativeness note instead of passing for a verdict.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import TYPE_CHECKING

from reporting.domain.assemble import ratio
from reporting.domain.model import Ratio

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from reporting.domain.config import ReportingConfig
    from reporting.domain.quality import Answer

VERBATIMS_EACH_WAY = 3  # the three harshest comments of unsatisfied answers, the three warmest of satisfied ones


@dataclass(frozen=True)
class Handling:
    marked: bool
    status: str
    owner: str | None
    note: str | None
    improvement_id: str | None


@dataclass(frozen=True)
class SatisfactionTrendPoint:
    label: str
    satisfied: Ratio


@dataclass(frozen=True)
class SatisfactionRow:
    service: str
    customer: str
    answers: int
    satisfied: Ratio
    mean_score_percent: float | None
    response_rate: Ratio
    representative: bool
    note: str | None
    trend: list[SatisfactionTrendPoint]  # earlier periods, oldest first, then this one


@dataclass(frozen=True)
class Verbatim:
    ticket_id: str
    service: str
    customer: str
    score: int
    scale: int
    comment: str
    answered_at: datetime


@dataclass(frozen=True)
class Complaint:
    ticket_id: str
    service: str
    customer: str
    score: int
    scale: int
    comment: str | None
    answered_at: datetime
    reason: str  # "score": under the configured ratio; "marked": marked a complaint by a person
    status: str
    owner: str | None
    note: str | None
    improvement_id: str | None


@dataclass(frozen=True)
class Satisfaction:
    rows: list[SatisfactionRow]
    praise: list[Verbatim]
    concerns: list[Verbatim]
    complaints: list[Complaint]


def _key(answer: Answer) -> tuple[str, str]:
    return answer.service, answer.customer or "unknown"


def _satisfied(answers: Sequence[Answer], config: ReportingConfig) -> int:
    threshold = Fraction(str(config.csat_satisfied_ratio))
    return sum(1 for a in answers if Fraction(a.score, a.scale) >= threshold)


def representativeness(answers: int, response_rate: Ratio, config: ReportingConfig) -> str | None:
    reasons = []
    if answers < config.csat_min_answers:
        reasons.append(f"{answers} answers (fewer than {config.csat_min_answers})")
    if response_rate.denominator and Fraction(response_rate.numerator, response_rate.denominator) < Fraction(
        str(config.csat_min_response_rate)
    ):
        minimum = f"{100 * config.csat_min_response_rate:g}"
        reasons.append(f"a response rate of {response_rate.percent} % (under {minimum} %)")
    if not reasons:
        return None
    return "Not representative: " + " and ".join(reasons) + "; read the score as an indication, not a verdict."


def is_complaint(answer: Answer, config: ReportingConfig, handling: Handling | None) -> str | None:
    if handling is not None and handling.marked:
        return "marked"
    if Fraction(answer.score, answer.scale) < Fraction(str(config.complaint_below_ratio)):
        return "score"
    return None


def satisfaction(
    answers: Sequence[Answer],
    resolutions: Mapping[tuple[str, str], int],
    history: Sequence[tuple[str, Sequence[Answer]]],
    handling: Mapping[str, Handling],
    config: ReportingConfig,
    label: str = "",
) -> Satisfaction:
    grouped: dict[tuple[str, str], list[Answer]] = defaultdict(list)
    for answer in answers:
        grouped[_key(answer)].append(answer)
    past: list[tuple[str, dict[tuple[str, str], list[Answer]]]] = []
    for past_label, past_answers in history:
        by_key: dict[tuple[str, str], list[Answer]] = defaultdict(list)
        for answer in past_answers:
            by_key[_key(answer)].append(answer)
        past.append((past_label, by_key))
    rows = []
    for key in sorted(set(grouped) | {k for k, n in resolutions.items() if n}):
        mine = grouped.get(key, [])
        response_rate = ratio(len(mine), resolutions.get(key, 0))
        mean = None
        if mine:
            mean = round(float(100 * sum((Fraction(a.score, a.scale) for a in mine), Fraction(0)) / len(mine)), 2)
        note = representativeness(len(mine), response_rate, config)
        trend = [
            SatisfactionTrendPoint(lbl, ratio(_satisfied(g.get(key, []), config), len(g.get(key, []))))
            for lbl, g in past
        ]
        trend.append(SatisfactionTrendPoint(label, ratio(_satisfied(mine, config), len(mine))))
        rows.append(
            SatisfactionRow(
                key[0],
                key[1],
                len(mine),
                ratio(_satisfied(mine, config), len(mine)),
                mean,
                response_rate,
                note is None,
                note,
                trend,
            )
        )
    commented = [a for a in answers if a.comment and a.comment.strip()]

    def verbatim(a: Answer) -> Verbatim:
        return Verbatim(
            a.ticket_id, a.service, a.customer or "unknown", a.score, a.scale, a.comment or "", a.answered_at
        )

    satisfied_at = Fraction(str(config.csat_satisfied_ratio))
    unhappy = sorted(
        (a for a in commented if Fraction(a.score, a.scale) < satisfied_at),
        key=lambda a: (Fraction(a.score, a.scale), a.answered_at, a.ticket_id),
    )
    happy = sorted(
        (a for a in commented if Fraction(a.score, a.scale) >= satisfied_at),
        key=lambda a: (-Fraction(a.score, a.scale), a.answered_at, a.ticket_id),
    )
    concerns = [verbatim(a) for a in unhappy[:VERBATIMS_EACH_WAY]]
    praise = [verbatim(a) for a in happy[:VERBATIMS_EACH_WAY]]
    complaints = []
    for answer in sorted(answers, key=lambda a: (a.answered_at, a.ticket_id)):
        record = handling.get(answer.ticket_id)
        reason = is_complaint(answer, config, record)
        if reason is None:
            continue
        complaints.append(
            Complaint(
                answer.ticket_id,
                answer.service,
                answer.customer or "unknown",
                answer.score,
                answer.scale,
                answer.comment,
                answer.answered_at,
                reason,
                record.status if record else "open",
                record.owner if record else None,
                record.note if record else None,
                record.improvement_id if record else None,
            )
        )
    return Satisfaction(rows, praise, concerns, complaints)


def complaint_counts(complaints: Sequence[Complaint]) -> dict[str, int]:
    """Complaints per handling status."""
    return dict(sorted(Counter(c.status for c in complaints).items()))
