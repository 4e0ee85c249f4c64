"""Multi-window, multi-burn-rate alerts: exact factors, and each alert fires and resolves exactly once."""

from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction

import pytest

from sla_engine.domain.slo.alerts import BURN_RULES, AlertName, AlertTransition, alert_transitions, burn_factor
from sla_engine.domain.slo.definition import SloDefinition
from sla_engine.domain.slo.evaluation import evaluate
from sla_engine.domain.slo.rollups import RatioMinute
from sla_engine.domain.slo.series import MinuteSeries, ratio_counts

from .builders import slo_from_yaml, utc

DAY = 86_400


@pytest.mark.parametrize(
    ("days", "factors"),
    [
        (30, [Fraction("14.4"), Fraction(6), Fraction(3), Fraction(1)]),
        (28, [Fraction("13.44"), Fraction("5.6"), Fraction("2.8"), Fraction(14, 15)]),  # 0.9333...
        (7, [Fraction("3.36"), Fraction("1.4"), Fraction("0.7"), Fraction(7, 30)]),
    ],
)
def test_burn_rate_factors_are_the_workbook_factors_scaled_exactly(days: int, factors: list[Fraction]) -> None:
    assert [burn_factor(rule, days * DAY) for rule in BURN_RULES] == factors


def api_slo(extra: str = "") -> SloDefinition:
    return slo_from_yaml(f"""\
  - id: api-success
    service: api
    sli: {{type: ratio, sli: requests}}
    objective: 99.9
    window: {{rolling: 30d}}
{extra}""")


def run(
    slo: SloDefinition, rows: list[RatioMinute], start: datetime, minutes: int
) -> list[tuple[datetime, AlertTransition]]:
    """Evaluate once a minute, as the periodic loop does, carrying the firing set between evaluations."""
    counts = ratio_counts(rows)
    firing: frozenset[AlertName] = frozenset()
    seen: list[tuple[datetime, AlertTransition]] = []
    for step in range(minutes):
        at = start + timedelta(minutes=step)
        # Minutes at or after `at` are ignored by the evaluator: the same as not having them yet.
        firing, transitions = alert_transitions(slo, evaluate(slo, counts, at), firing)
        seen += [(at, transition) for transition in transitions]
    return seen


def traffic(start: datetime, minutes: int, bad: int = 0) -> list[RatioMinute]:
    return [RatioMinute(start + timedelta(minutes=index), 1_000 - bad, 1_000) for index in range(minutes)]


def test_a_page_fires_once_on_a_fast_burn_and_resolves_once_when_it_stops() -> None:
    incident = utc("2026-03-04T00:00:00")
    # Three quiet days, then 90 minutes at 2 % errors (a 20x burn on a 0.1 % budget), then quiet again.
    rows = (
        traffic(incident - timedelta(days=3), 3 * 1_440)
        + traffic(incident, 90, bad=20)
        + traffic(incident + timedelta(minutes=90), 120)
    )
    seen = run(api_slo(), rows, incident - timedelta(minutes=5), 215)
    assert [(t.alert, t.state) for _, t in seen] == [("page", "firing"), ("page", "resolved")]
    (fired_at, fired), (resolved_at, _) = seen
    # 1h burn = 20 x m / 60 reaches 14.4 at m = 43.2, so after the 44th bad minute; 5m is at 20x by then.
    assert fired_at == incident + timedelta(minutes=44)
    assert fired.windows["long"] == "1h"
    assert fired.burn_rate is not None
    assert fired.burn_rate >= 14
    # The 5m lookback drops below 14.4 once fewer than 4 of its 5 minutes are bad: 2 minutes after the end.
    assert resolved_at == incident + timedelta(minutes=92)


def test_a_slow_burn_opens_a_ticket_but_does_not_page() -> None:
    start = utc("2026-03-04T00:00:00")
    # 0.4 % errors for a whole day: a 4x burn, over the ticket factor 3 but below both page factors. Ten
    # quiet days before keep the event budget (0.1 % of all events) from running out.
    rows = traffic(start - timedelta(days=10), 10 * 1_440) + traffic(start, 1_440, bad=4)
    seen = run(api_slo(), rows, start + timedelta(hours=23), 70)
    assert [(t.alert, t.state) for _, t in seen] == [("ticket", "firing")]


def test_budget_exhaustion_and_no_data_fire_once_and_resolve() -> None:
    slo = api_slo("    no_data_after: 10m\n")
    at = utc("2026-03-04T00:00:00")
    status = evaluate(slo, ratio_counts([RatioMinute(at - timedelta(minutes=1), 990, 1_000)]), at)
    firing, transitions = alert_transitions(slo, status, frozenset())
    assert {t.alert for t in transitions} >= {"budget_exhausted"}
    firing, again = alert_transitions(slo, status, firing)
    assert again == []
    later = at + timedelta(minutes=30)
    firing, transitions = alert_transitions(slo, evaluate(slo, MinuteSeries.empty(), later), firing)
    assert ("no_data", "firing") in [(t.alert, t.state) for t in transitions]
    assert ("budget_exhausted", "resolved") in [(t.alert, t.state) for t in transitions]
    healthy = evaluate(slo, ratio_counts([RatioMinute(later - timedelta(minutes=1), 1_000, 1_000)]), later)
    firing, transitions = alert_transitions(slo, healthy, firing)
    assert ("no_data", "resolved") in [(t.alert, t.state) for t in transitions]
    assert "no_data" not in firing
