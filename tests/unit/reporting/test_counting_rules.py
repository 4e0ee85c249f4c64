"""Counting rules: ratios, red/amber/green, which cycles count, volume transitions, amendment diffs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from reporting.domain.amendments import changes
from reporting.domain.assemble import overall_attainment, priority_order, rag, ratio, target_summaries
from reporting.domain.config import ReportingConfig
from reporting.domain.inputs import OutcomeCell
from reporting.domain.model import Ratio
from reporting.domain.outcomes import arrived_out_of_order, contribution, wins
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


@dataclass(frozen=True)
class Published:
    """One `sla.clock.v1` of a cycle as reporting judges it: event time, transition, engine sequence."""

    time: datetime
    transition: str
    sequence: int | None


def winner(arrivals: list[Published]) -> Published | None:
    """The event a cycle's row ends on when the events arrive in this order (what `apply_clocks` keeps)."""
    won: Published | None = None
    for event in arrivals:
        if won is None or wins(
            event.time, event.transition, won.time, new_sequence=event.sequence, current_sequence=won.sequence
        ):
            won = event
    return won


TRANSITIONS = [
    "started",
    "paused",
    "resumed",
    "warning",
    "breached",
    "met",
    "stopped_breached",
    "cancelled",
    "recalculated",
]
published_events = st.builds(
    Published, st.integers(0, 30 * 24).map(lambda h: T0 + timedelta(hours=h)), st.sampled_from(TRANSITIONS), st.none()
)


@settings(max_examples=300, deadline=None)
@given(st.lists(published_events, min_size=1, max_size=8), st.lists(published_events, max_size=4), st.data())
def test_any_arrival_order_ends_on_the_highest_sequence(
    numbered: list[Published], older: list[Published], data: st.DataObject
) -> None:
    # The engine numbers a cycle's events 1, 2, ...; event times and transitions say nothing of their order (a
    # `recalculated` is dated when it was noticed, the transitions it precedes in their own past). Events of an
    # engine older than sequences (`older`) come before all of them.
    cycle = [Published(e.time, e.transition, n) for n, e in enumerate(numbered, start=1)] + older
    arrivals = data.draw(st.permutations(cycle))
    assert winner(arrivals) == cycle[len(numbered) - 1]


def test_the_issue_18_timeline_ends_on_the_stop_whatever_the_arrival_order() -> None:
    # Breached, then a late pause retracts the breach (`recalculated`, dated at processing time, 20 days on),
    # then the resume, the new breach and the stop, dated in their own past.
    cycle = [
        Published(T0, "started", 1),
        Published(T0 + timedelta(hours=8), "breached", 2),
        Published(T0 + timedelta(hours=5), "paused", 3),
        Published(T0 + timedelta(days=20), "recalculated", 4),
        Published(T0 + timedelta(hours=7), "resumed", 5),
        Published(T0 + timedelta(hours=10), "breached", 6),
        Published(T0 + timedelta(hours=16), "stopped_breached", 7),
    ]
    assert winner(cycle) == cycle[-1]
    assert winner(cycle[::-1]) == cycle[-1]
    unnumbered = [Published(e.time, e.transition, None) for e in cycle]
    assert winner(unnumbered) == unnumbered[3]  # the old rule: the `recalculated` of 20 days on hid the stop


def test_an_event_is_out_of_order_when_a_later_one_arrived_first() -> None:
    later = T0 + timedelta(days=1)
    assert arrived_out_of_order(T0, later, new_sequence=5, current_sequence=4) is False
    assert arrived_out_of_order(later, T0, new_sequence=3, current_sequence=4) is True
    assert arrived_out_of_order(T0, later) is True
    assert arrived_out_of_order(T0, None, new_sequence=1) is False


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
    return Snapshot(
        T0 + timedelta(minutes=minutes), sequence, f"e{sequence}", action, status, "P2", "email", "acme", "incident"
    )


def test_volume_transitions_are_the_same_whatever_the_arrival_order() -> None:
    timeline = [
        snap(0, "new", 1, "created"),
        snap(10, "in_progress", 2),
        snap(20, "resolved", 3),
        snap(30, "in_progress", 4, "reopened"),
        snap(40, "resolved", 5),
        snap(50, "closed", 6),
    ]
    in_order = volume_transitions(timeline)
    assert [(t.kind, t.open_delta) for t in in_order] == [
        ("created", 1),
        ("resolved", -1),
        ("reopened", 1),
        ("resolved", -1),
    ]
    assert volume_transitions(list(reversed(timeline))) == in_order
    assert sum(t.open_delta for t in in_order) == 0  # resolved at the end: not in the backlog


def test_a_cancelled_ticket_leaves_the_backlog_once() -> None:
    transitions = volume_transitions([snap(0, "new", 1, "created"), snap(5, "cancelled", 2, "cancelled")])
    assert [(t.kind, t.open_delta) for t in transitions] == [("created", 1), ("cancelled", -1)]


def test_an_amendment_lists_substantive_changes_only() -> None:
    before = {
        "header": {"generated_at": "a", "tenant": "t"},
        "summary": {"overall": {"numerator": 2}},
        "breaches": {"tickets": [{"ticket_id": "INC-1", "metric": "response", "over_target_seconds": 5}]},
        "data_notes": {"events": 1},
    }
    after = {
        "header": {"generated_at": "b", "tenant": "t"},
        "summary": {"overall": {"numerator": 3}},
        "breaches": {"tickets": [{"ticket_id": "INC-1", "metric": "response", "over_target_seconds": 9}]},
        "data_notes": {"events": 2},
    }
    found = {c.path: (c.before, c.after) for c in changes(before, after)}
    assert found == {
        "summary.overall.numerator": (2, 3),
        "breaches.tickets[ticket_id=INC-1,metric=response].over_target_seconds": (5, 9),
    }
