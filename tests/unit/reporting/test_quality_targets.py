"""Service quality targets on a small hand-computed period: each KPI, its standard, its comparison."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from pydantic import ValidationError

from reporting.domain.config import QualityTarget, ReportingConfig
from reporting.domain.quality import (
    Answer,
    CycleCount,
    OpenTicket,
    QualityFacts,
    Reopens,
    Resolutions,
    SloValue,
    evaluate,
    first_contact,
    nearest_rank,
)

END = datetime(2026, 11, 1, tzinfo=UTC)
AT = END - timedelta(days=3)


def facts() -> QualityFacts:
    return QualityFacts(
        end=END,
        satisfied_ratio=0.8,
        # acme: 5/5, 4/5, 2/5 -> ratios 1, 0.8, 0.4: mean 2.2/3 = 73.33 %, satisfied 2/3; globex: 9/10.
        answers=[
            Answer("T1", "email", "acme", 5, 5, AT),
            Answer("T2", "email", "acme", 4, 5, AT),
            Answer("T3", "email", "acme", 2, 5, AT, "slow"),
            Answer("T4", "erp", "globex", 9, 10, AT),
        ],
        # T1, T2, T3 of email/acme (T2 not first contact: the customer replied after the agent), T4 of erp.
        resolutions=[Resolutions("email", "acme", 3, 2), Resolutions("erp", "globex", 1, 1)],
        reopens=[Reopens("email", "acme", 1)],
        # Ages at the end: 1, 2, ... 10 days of email/acme tickets: p90 = the 9th smallest = 9 days.
        open_at_end=[OpenTicket(f"O{d}", "email", "acme", END - timedelta(days=d)) for d in range(1, 11)],
        cycles=[
            CycleCount("email", "acme", "SLA", "response", 18, 2),
            CycleCount("email", "acme", "SLA", "resolution", 7, 3),
            CycleCount("email", "acme", "OLA", "response", 9, 1),
            CycleCount("erp", "globex", "SLA", "response", 5, 0),
        ],
        slos=[SloValue("email-availability", "email", 99.95, 43178.4, 43200.0)],
    )


def target(**fields: object) -> QualityTarget:
    return QualityTarget.model_validate({"id": "t", **fields})


def test_csat_mean_and_satisfied_share_of_one_customer() -> None:
    mean, satisfied = evaluate(
        [
            target(kpi="csat_mean", threshold=80, customer="acme"),
            target(kpi="csat_satisfied", threshold=60, customer="acme"),
        ],
        facts(),
    )
    assert (mean.value, mean.numerator, mean.denominator, mean.status) == (73.33, 2.2, 3, "missed")
    assert (satisfied.value, satisfied.numerator, satisfied.denominator, satisfied.status) == (66.67, 2, 3, "met")
    assert mean.standard == "CSAT mean score (% of scale) >= 80 % for customer acme"


def test_too_few_answers_are_not_judged() -> None:
    [result] = evaluate([target(kpi="csat_satisfied", threshold=60, customer="acme", min_sample=5)], facts())
    assert (result.status, result.sample, result.min_sample) == ("insufficient_data", 3, 5)
    assert result.standard.endswith("at least 5 in the sample")


def test_reopen_rate_and_first_contact_resolution() -> None:
    reopen, fcr = evaluate(
        [
            target(kpi="reopen_rate", threshold=20, service="email"),
            target(kpi="first_contact_resolution", threshold=50),
        ],
        facts(),
    )
    # email: 1 reopen / 3 resolutions = 33.33 % > 20 %; everyone: T1, T3, T4 of 4.
    assert (reopen.value, reopen.comparison, reopen.status) == (33.33, "<=", "missed")
    assert (fcr.numerator, fcr.denominator, fcr.value, fcr.status) == (3, 4, 75.0, "met")


def test_first_contact_means_no_customer_reply_after_the_first_agent_reply() -> None:
    assert first_contact(["created", "customer_replied", "agent_replied", "agent_replied", "resolved"])
    assert not first_contact(["created", "agent_replied", "customer_replied", "resolved"])
    assert not first_contact(["created", "agent_replied", "resolved", "reopened", "resolved"])


def test_backlog_age_p90_is_the_nearest_rank() -> None:
    [result] = evaluate([target(kpi="backlog_age_p90", threshold=8 * 86400)], facts())
    assert (result.value, result.unit, result.sample, result.status) == (9 * 86400, "s", 10, "missed")
    assert nearest_rank([5, 1, 3], Fraction(1, 2)) == 3  # ceil(1.5) = 2nd smallest


def test_breach_rate_per_agreement_and_sla_attainment_of_a_metric() -> None:
    sla, ola, resolution = evaluate(
        [
            target(kpi="breach_rate", threshold=15, customer="acme"),
            target(kpi="breach_rate", threshold=15, agreement="OLA"),
            target(kpi="sla_attainment", threshold=75, metric="resolution"),
        ],
        facts(),
    )
    # acme SLA: 5 breached / 30 counted = 16.67 %; OLA 1 / 10 = 10 %; SLA resolution 7 / 10 = 70 %.
    assert (sla.value, sla.status) == (16.67, "missed")
    assert (ola.value, ola.status) == (10.0, "met")
    assert (resolution.value, resolution.status) == (70.0, "missed")
    assert resolution.standard == "SLA attainment (SLA resolution) >= 75 %"


def test_slo_attainment_and_an_exact_comparison_at_the_threshold() -> None:
    met, exact = evaluate(
        [
            target(kpi="slo_attainment", threshold=99.9, slo_id="email-availability"),
            target(kpi="sla_attainment", threshold=90, customer="acme", metric="response"),
        ],
        facts(),
    )
    assert (met.value, met.status) == (99.95, "met")
    assert (exact.value, exact.status) == (90.0, "met")  # 18 / 20 is exactly 90: at the threshold passes


def test_no_data_and_the_trend_over_earlier_periods() -> None:
    empty = QualityFacts(end=END - timedelta(days=30), satisfied_ratio=0.8)
    [result] = evaluate([target(kpi="reopen_rate", threshold=20)], facts(), "2026-10", [("2026-09", empty)])
    assert [(p.label, p.value, p.status) for p in result.trend] == [
        ("2026-09", None, "no_data"),
        ("2026-10", 25.0, "missed"),
    ]


def test_the_configuration_bounds_targets() -> None:
    with pytest.raises(ValidationError):
        ReportingConfig.model_validate({"quality_targets": [{"id": "x", "kpi": "happiness", "threshold": 1}]})
    with pytest.raises(ValidationError):
        ReportingConfig.model_validate({"quality_targets": [{"id": "x", "kpi": "reopen_rate", "threshold": -1}]})
