"""The fault harness's own logic, without I/O: the workload it records and the checker's verdicts."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.faults.checker import (
    Findings,
    check_transitions,
    differences,
    final_states,
    projected,
    repeated_without_correction,
    report_view,
)
from tests.faults.observe import EndState, Transition
from tests.faults.workload import WorkloadShape, generate, open_clock_instants

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def transition(event_id: str, kind: str, minute: int, threshold: float | None = None) -> Transition:
    data: dict[str, Any] = {"transition": kind, "threshold": threshold, "minute": minute}
    at = START + timedelta(minutes=minute)
    return Transition(event_id, "INC-1", "response", 1, kind, threshold, at, at, data)


def test_the_workload_delivers_late_and_twice_and_keeps_the_quiet_window_free() -> None:
    workload = generate(WorkloadShape(tickets=300, stream_seconds=120), START)
    delivered = [event_id for batch in workload.batches for event_id in batch]
    assert len(workload.tickets) == 300
    assert set(delivered) == set(workload.events)
    assert sum(1 for count in Counter(delivered).values() if count > 1) >= len(workload.events) // 20
    times = [workload.events[event_id]["time"] for event_id in delivered]
    assert sum(1 for a, b in itertools.pairwise(times) if b < a) > 0  # out of order
    assert all(datetime.fromisoformat(e["time"]) < START for e in workload.events.values())
    assert {e["type"] for e in workload.events.values()} == {
        "itsm.ticket.v1",
        "itsm.availability.v1",
        "itsm.feedback.v1",
    }
    assert workload.due_in_stream > 0


def test_an_unanswered_ticket_falls_due_at_its_targets_and_a_pause_moves_the_resolution() -> None:
    created = START
    answered_later = [
        (created + timedelta(minutes=30), "updated", "pending_customer"),
        (created + timedelta(minutes=90), "customer_replied", "in_progress"),
    ]
    instants = open_clock_instants(created, answered_later, "P1")
    # Response (15 min, never stopped) at 50/75/90/100 %; resolution (4 h) shifted by the hour paused.
    assert instants[:4] == [created + timedelta(minutes=m) for m in (7.5, 11.25, 13.5, 15)]
    assert instants[-1] == created + timedelta(hours=5)


def test_the_same_transition_at_the_same_instant_under_a_new_id_is_a_duplicate_unless_recalculated_between() -> None:
    findings = Findings()
    check_transitions(
        [transition("a", "started", 0), transition("b", "breached", 60), transition("c", "breached", 60)], findings
    )
    assert [t.event_id for t in findings.duplicated] == ["c"]

    findings = Findings()
    check_transitions(
        [
            transition("a", "started", 0),
            transition("b", "breached", 60),
            transition("r", "recalculated", 61),
            transition("c", "breached", 60),
        ],
        findings,
    )
    assert findings.duplicated == []


def test_a_correction_at_another_instant_is_not_a_duplicate() -> None:
    findings = Findings()
    check_transitions(
        [transition("a", "started", 10), transition("b", "started", 0), transition("r", "recalculated", 61)], findings
    )
    assert findings.duplicated == []


def retraction(event_id: str, minute: int, retracted: Transition) -> Transition:
    marker = transition(event_id, "recalculated", minute)
    marker.data["retracts"] = {
        "transition": retracted.transition,
        "threshold": retracted.threshold,
        "at": retracted.time.isoformat(),
    }
    return marker


def test_a_warning_retracted_and_published_again_at_its_corrected_instant_fired_once() -> None:
    first = transition("w1", "warning", 30, 50)
    corrected = [transition("a", "started", 0), first, retraction("r", 40, first), transition("w2", "warning", 45, 50)]
    assert repeated_without_correction(corrected, ("warning", "breached"), any_instant=True) == []
    # The engine's own order (clocks.md): the corrected transition first, then the `recalculated` retracting the
    # old one, in the same reconciliation.
    engine_order = [
        transition("a", "started", 0),
        first,
        transition("w2", "warning", 45, 50),
        retraction("r", 45, first),
    ]
    assert repeated_without_correction(engine_order, ("warning", "breached"), any_instant=True) == []
    twice = [transition("a", "started", 0), transition("w1", "warning", 30), transition("w2", "warning", 45)]
    assert [t.event_id for t in repeated_without_correction(twice, ("warning", "breached"), any_instant=True)] == ["w2"]
    assert repeated_without_correction(twice, ("warning", "breached")) == []  # as duplicates: another instant


def test_a_redelivered_record_is_not_a_duplicate_but_a_reused_id_is_a_collision() -> None:
    findings = Findings()
    first = transition("a", "started", 0)
    check_transitions([first, first, transition("a", "paused", 5)], findings)
    assert (findings.redelivered, findings.id_collisions, findings.duplicated) == (1, ["a"], [])


def test_a_cycle_published_out_of_sequence_is_reported() -> None:
    findings = Findings()
    numbered = [
        transition(event_id, kind, minute)
        for event_id, kind, minute in (("a", "started", 0), ("b", "paused", 10), ("c", "resumed", 20))
    ]
    for number, item in zip((1, 3, 2), numbered, strict=True):
        item.data["sequence"] = number
    check_transitions(numbered, findings)
    assert [(earlier.event_id, later.event_id) for earlier, later in findings.order_violations] == [("b", "c")]


def clock_event(event_id: str, kind: str, at: datetime, sequence: int, **state: Any) -> Transition:
    data: dict[str, Any] = {
        "ticket_id": "INC-1",
        "policy_id": "p",
        "metric": "resolution",
        "cycle": 1,
        "transition": kind,
        "sequence": sequence,
        "target_seconds": 28800,
        "breached": False,
        "started_at": "2026-12-01T00:00:00Z",
        "due_at": None,
        "breached_at": None,
        "stopped_at": None,
        **state,
    }
    return Transition(event_id, "INC-1", "resolution", 1, kind, None, at, at, data)


def end_state(at: datetime, transitions: list[Transition], report: Any) -> EndState:
    return EndState("t", at, set(), transitions, {}, {}, report)


def test_a_running_clocks_final_word_stands_at_the_reading_instant_whenever_it_was_published() -> None:
    # One run published the breach at its instant; another followed it with a `recalculated` when it noticed a
    # late event (its figures stand at that processing instant, with a fraction of a second).
    breached_at = START + timedelta(hours=8)
    breach = clock_event(
        "b",
        "breached",
        breached_at,
        5,
        state="running",
        breached=True,
        elapsed_seconds=28800,
        breached_at="2026-12-01T20:00:00Z",
    )
    noticed = START + timedelta(hours=10, seconds=7, microseconds=710_097)
    recalculated = clock_event(
        "r",
        "recalculated",
        noticed,
        11,
        state="running",
        breached=True,
        elapsed_seconds=28800 + 2 * 3600 + 7,
        breached_at="2026-12-01T20:00:00Z",
    )
    at = START + timedelta(hours=12, microseconds=500_000)
    by_instant = final_states([breach], at)[("INC-1", "resolution", 1)]
    by_noticing = final_states([breach, recalculated], at)[("INC-1", "resolution", 1)]
    assert by_instant == by_noticing
    assert by_instant["elapsed_seconds"] == 28800 + 4 * 3600  # four hours running since the breach


def test_a_paused_or_stopped_clock_does_not_move_with_the_reading_instant() -> None:
    paused = clock_event("p", "paused", START, 2, state="paused", elapsed_seconds=600)
    met = clock_event("m", "met", START, 3, state="met", elapsed_seconds=900, stopped_at="2026-12-01T12:00:00Z")
    later = START + timedelta(days=1)
    assert projected(paused.data, paused.time, later)["elapsed_seconds"] == 600
    assert projected(met.data, met.time, later)["elapsed_seconds"] == 900


def report_line(**state: Any) -> dict[str, Any]:
    return {
        "ticket_id": "INC-1",
        "policy_id": "p",
        "metric": "resolution",
        "cycle": 1,
        "target_seconds": 28800,
        "breached_at": None,
        "stopped_at": None,
        **state,
    }


def test_a_report_line_that_is_not_the_cycles_highest_sequence_is_a_divergence_from_the_engine() -> None:
    started = clock_event("s", "started", START, 1, state="running", elapsed_seconds=0)
    stopped = clock_event(
        "m", "met", START + timedelta(hours=1), 2, state="met", elapsed_seconds=3600, stopped_at="2026-12-01T13:00:00Z"
    )
    stale = {"clocks": [report_line(state="running", elapsed_seconds=0)]}
    findings = Findings()
    report_view("faulted", end_state(START + timedelta(hours=2), [started, stopped], stale), findings)
    assert len(findings.report_vs_engine) == 1
    assert "state running != met" in findings.report_vs_engine[0]

    agreeing = {"clocks": [report_line(state="met", elapsed_seconds=3600, stopped_at="2026-12-01T13:00:00Z")]}
    findings = Findings()
    report_view("faulted", end_state(START + timedelta(hours=2), [started, stopped], agreeing), findings)
    assert findings.report_vs_engine == []


def test_reports_compare_cycles_as_sets_and_slos_by_the_bad_time_they_counted() -> None:
    events = [
        clock_event(
            "a",
            "breached",
            START,
            1,
            state="running",
            breached=True,
            elapsed_seconds=28800,
            breached_at="2026-12-01T12:00:00Z",
        )
    ]
    other = clock_event(
        "b",
        "breached",
        START,
        1,
        state="running",
        breached=True,
        elapsed_seconds=28800,
        breached_at="2026-12-01T12:00:00Z",
    )
    other = Transition(
        "b", "INC-2", "resolution", 1, "breached", None, START, START, {**other.data, "ticket_id": "INC-2"}
    )
    events.append(other)
    first, second = (
        report_line(
            state="running",
            breached=True,
            elapsed_seconds=28800,
            breached_at="2026-12-01T12:00:00Z",
            over_target_seconds=0,
        )
        for _ in range(2)
    )
    second["ticket_id"] = "INC-2"

    def report(lines: list[dict[str, Any]], evaluated: str, good: float, total: float) -> dict[str, Any]:
        return {
            "breaches": {"open_breaches": lines},
            "slos": [
                {
                    "slo_id": "email",
                    "service": "email",
                    "objective": 95.0,
                    "evaluated_at": evaluated,
                    "good": good,
                    "total": total,
                    "sli_value": 100 * good / total,
                }
            ],
        }

    at = START + timedelta(hours=1)
    one = report_view("faulted", end_state(at, events, report([first, second], "12:00", 900.0, 1000.0)), Findings())
    two = report_view("clean", end_state(at, events, report([second, first], "12:03", 1080.0, 1180.0)), Findings())
    assert differences(one, two) == []
    three = report_view("clean", end_state(at, events, report([second, first], "12:03", 1070.0, 1180.0)), Findings())
    assert differences(one, three) == [".slos.email.bad: 100.0 != 110.0"]
