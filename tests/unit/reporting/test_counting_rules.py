"""Counting rules: ratios, red/amber/green, which cycles count, volume transitions, amendment diffs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reporting.domain.amendments import changes
from reporting.domain.assemble import overall_attainment, priority_order, rag, ratio, target_summaries
from reporting.domain.config import ReportingConfig
from reporting.domain.inputs import OutcomeCell
from reporting.domain.model import Ratio
from reporting.domain.outcomes import contribution, wins
from reporting.domain.tickets import Snapshot, volume_transitions

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def test_a_ratio_keeps_numerator_and_denominator_and_rounds_half_even() -> None:
    assert ratio(45, 52) == Ratio(45, 52, 86.54)
    assert ratio(1, 8) == Ratio(1, 8, 12.5)
    assert ratio(0, 0) == Ratio(0, 0, None)


def test_red_amber_green_compare_exactly_not_after_rounding() -> None:
    assert rag(95, 100, 95.0, 5.0) == "green"  # exactly on target is met
    assert rag(18999, 20000, 95.0, 5.0) == "amber"  # 94.995 % would round to 95.00
    assert rag(90, 100, 95.0, 5.0) == "amber"
    assert rag(899, 1000, 95.0, 5.0) == "red"
    assert rag(0, 0, 95.0, 5.0) == "no_data"


def test_only_met_and_breached_cycles_with_a_stop_count() -> None:
    assert contribution("met", T0, 100, 200) is not None
    breached = contribution("breached", T0, 300, 200)
    assert breached is not None
    assert (breached.breached, breached.over_target_seconds) == (1, 100)
    assert contribution("cancelled", T0, 100, 200) is None
    assert contribution("running", None, 300, 200) is None
    assert contribution("met", None, 100, 200) is None


def test_the_latest_transition_wins_and_a_recalculation_always_replaces() -> None:
    assert wins(T0, "met", None)
    assert wins(T0, "met", T0)
    assert not wins(T0, "started", T0 + timedelta(seconds=1))
    assert wins(T0, "recalculated", T0 + timedelta(days=1))


def cell(metric: str, priority: str, met: int, breached: int, agreement: str = "SLA") -> OutcomeCell:
    return OutcomeCell("email", "acme", agreement, "p", 1, "24x7", metric, priority, met, breached)


def test_the_overall_status_is_the_worst_metric_against_its_own_target() -> None:
    config = ReportingConfig(metric_targets_percent={"response": 95, "resolution": 80})
    cells = [cell("response", "P1", 19, 1), cell("resolution", "P1", 17, 3), cell("resolution", "P1", 0, 9, "OLA")]
    overall, status = overall_attainment(cells, config)
    assert overall == Ratio(36, 40, 90.0)  # OLA cycles are not the customer's SLA
    assert status == "green"  # response 95 % >= 95, resolution 85 % >= 80
    summaries = target_summaries(cells, config)
    assert [(s.metric, s.status) for s in summaries] == [("resolution", "green"), ("response", "green")]


def test_priorities_sort_by_their_number() -> None:
    assert sorted(["P10", "P2", "P1"], key=priority_order) == ["P1", "P2", "P10"]


def snap(minutes: int, status: str, sequence: int, action: str = "updated") -> Snapshot:
    return Snapshot(T0 + timedelta(minutes=minutes), sequence, f"e{sequence}", action, status, "P2", "email", "acme",
                    "incident")


def test_volume_transitions_are_the_same_whatever_the_arrival_order() -> None:
    timeline = [snap(0, "new", 1, "created"), snap(10, "in_progress", 2), snap(20, "resolved", 3),
                snap(30, "in_progress", 4, "reopened"), snap(40, "resolved", 5), snap(50, "closed", 6)]
    in_order = volume_transitions(timeline)
    assert [(t.kind, t.open_delta) for t in in_order] == [("created", 1), ("resolved", -1), ("reopened", 1),
                                                           ("resolved", -1)]
    assert volume_transitions(list(reversed(timeline))) == in_order
    assert sum(t.open_delta for t in in_order) == 0  # resolved at the end: not in the backlog


def test_a_cancelled_ticket_leaves_the_backlog_once() -> None:
    transitions = volume_transitions([snap(0, "new", 1, "created"), snap(5, "cancelled", 2, "cancelled")])
    assert [(t.kind, t.open_delta) for t in transitions] == [("created", 1), ("cancelled", -1)]


def test_an_amendment_lists_substantive_changes_only() -> None:
    before = {"header": {"generated_at": "a", "tenant": "t"}, "summary": {"overall": {"numerator": 2}},
              "breaches": {"tickets": [{"ticket_id": "INC-1", "metric": "response", "over_target_seconds": 5}]},
              "data_notes": {"events": 1}}
    after = {"header": {"generated_at": "b", "tenant": "t"}, "summary": {"overall": {"numerator": 3}},
             "breaches": {"tickets": [{"ticket_id": "INC-1", "metric": "response", "over_target_seconds": 9}]},
             "data_notes": {"events": 2}}
    found = {c.path: (c.before, c.after) for c in changes(before, after)}
    assert found == {"summary.overall.numerator": (2, 3),
                     "breaches.tickets[ticket_id=INC-1,metric=response].over_target_seconds": (5, 9)}
