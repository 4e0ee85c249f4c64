"""The fault harness's own logic, without I/O: the workload it records and the checker's verdicts."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.faults.checker import Findings, check_transitions
from tests.faults.observe import Transition
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
    assert {e["type"] for e in workload.events.values()} == {"itsm.ticket.v1", "itsm.availability.v1",
                                                             "itsm.feedback.v1"}
    assert workload.due_in_stream > 0


def test_an_unanswered_ticket_falls_due_at_its_targets_and_a_pause_moves_the_resolution() -> None:
    created = START
    answered_later = [(created + timedelta(minutes=30), "updated", "pending_customer"),
                      (created + timedelta(minutes=90), "customer_replied", "in_progress")]
    instants = open_clock_instants(created, answered_later, "P1")
    # Response (15 min, never stopped) at 50/75/90/100 %; resolution (4 h) shifted by the hour paused.
    assert instants[:4] == [created + timedelta(minutes=m) for m in (7.5, 11.25, 13.5, 15)]
    assert instants[-1] == created + timedelta(hours=5)


def test_the_same_transition_at_the_same_instant_under_a_new_id_is_a_duplicate_unless_recalculated_between() -> None:
    findings = Findings()
    check_transitions([transition("a", "started", 0), transition("b", "breached", 60),
                       transition("c", "breached", 60)], findings)
    assert [t.event_id for t in findings.duplicated] == ["c"]

    findings = Findings()
    check_transitions([transition("a", "started", 0), transition("b", "breached", 60),
                       transition("r", "recalculated", 61), transition("c", "breached", 60)], findings)
    assert findings.duplicated == []


def test_a_correction_at_another_instant_is_not_a_duplicate() -> None:
    findings = Findings()
    check_transitions([transition("a", "started", 10), transition("b", "started", 0),
                       transition("r", "recalculated", 61)], findings)
    assert findings.duplicated == []


def test_a_redelivered_record_is_not_a_duplicate_but_a_reused_id_is_a_collision() -> None:
    findings = Findings()
    first = transition("a", "started", 0)
    check_transitions([first, first, transition("a", "paused", 5)], findings)
    assert (findings.redelivered, findings.id_collisions, findings.duplicated) == (1, ["a"], [])


def test_a_cycle_published_out_of_sequence_is_reported() -> None:
    findings = Findings()
    numbered = [transition(event_id, kind, minute) for event_id, kind, minute in
                (("a", "started", 0), ("b", "paused", 10), ("c", "resumed", 20))]
    for number, item in zip((1, 3, 2), numbered, strict=True):
        item.data["sequence"] = number
    check_transitions(numbered, findings)
    assert [(earlier.event_id, later.event_id) for earlier, later in findings.order_violations] == [("b", "c")]
