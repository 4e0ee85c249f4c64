"""The verdict: the faulted run's end state against a clean run of the same workload.

Invariants: nothing intake acknowledged is lost; no transition happens twice downstream (outside a
`recalculated`); each cycle's transitions are published in sequence order (where the engine numbers them);
clocks, final transitions, SLO statuses and the report equal the clean run's; every timer due while the faults
ran fires exactly once, never early; event ids are unique.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tests.faults.injectors import FaultOutcome
from tests.faults.observe import EndState, Transition
from tests.faults.sender import SenderRecord

TIMER_TRANSITIONS = ("warning", "breached")
FINAL_FIELDS = ("state", "breached", "due_at", "breached_at", "stopped_at", "target_seconds", "elapsed_seconds")
ClockKey = tuple[str, str, int]


@dataclass
class Findings:
    lost: list[tuple[str, datetime]] = field(default_factory=list)  # acknowledged, never published by intake
    duplicated: list[Transition] = field(default_factory=list)  # the same transition again, under a new id
    redelivered: int = 0  # the same record id twice: at-least-once delivery, absorbed by the inboxes
    id_collisions: list[str] = field(default_factory=list)  # one id, two different events
    order_violations: list[tuple[Transition, Transition]] = field(default_factory=list)
    clock_mismatches: list[str] = field(default_factory=list)  # tickets whose clocks differ from the clean run
    final_mismatches: list[ClockKey] = field(default_factory=list)
    slo_mismatches: list[str] = field(default_factory=list)
    report_differences: list[str] = field(default_factory=list)
    timers_expected: int = 0
    timers_missing: list[tuple[str, str, int, str, float | None]] = field(default_factory=list)
    timers_twice: list[tuple[str, str, int, str, float | None]] = field(default_factory=list)
    timers_early: list[Transition] = field(default_factory=list)
    timers_due_in_downtime: int = 0
    rejected: dict[str, str] = field(default_factory=dict)

    @property
    def violations(self) -> dict[str, int]:
        return {"lost": len(self.lost), "duplicated": len(self.duplicated), "id collisions": len(self.id_collisions),
                "order violations": len(self.order_violations), "clock mismatches": len(self.clock_mismatches),
                "final transition mismatches": len(self.final_mismatches),
                "SLO mismatches": len(self.slo_mismatches), "report differences": len(self.report_differences),
                "timers missing": len(self.timers_missing), "timers fired twice": len(self.timers_twice),
                "timers early": len(self.timers_early), "rejected": len(self.rejected)}


def by_clock(transitions: list[Transition]) -> dict[ClockKey, list[Transition]]:
    """Each clock's transitions in the order the engine published them (one ticket, one partition)."""
    grouped: dict[ClockKey, list[Transition]] = defaultdict(list)
    for transition in transitions:
        grouped[(transition.ticket, transition.metric, transition.cycle)].append(transition)
    return grouped


def differences(left: Any, right: Any, path: str = "") -> list[str]:
    if isinstance(left, dict) and isinstance(right, dict):
        return [d for k in sorted(set(left) | set(right), key=str)
                for d in differences(left.get(k), right.get(k), f"{path}.{k}")]
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        return [d for i, (a, b) in enumerate(zip(left, right, strict=True)) for d in differences(a, b, f"{path}[{i}]")]
    return [] if left == right else [f"{path}: {str(left)[:80]} != {str(right)[:80]}"]


def check_transitions(faulted: list[Transition], findings: Findings) -> None:
    seen: dict[str, Transition] = {}
    for transition in faulted:
        earlier = seen.get(transition.event_id)
        if earlier is None:
            seen[transition.event_id] = transition
        elif earlier.data == transition.data:
            findings.redelivered += 1
        else:
            findings.id_collisions.append(transition.event_id)
    for clock in by_clock(list(seen.values())).values():
        # A duplicated effect: the same transition at the same instant published again under a new id, with
        # no `recalculated` of this clock in between (a correction re-publishes on purpose, before its marker).
        since_recalculated: set[tuple[str, float | None, datetime]] = set()
        last: tuple[int, Transition] | None = None
        for transition in clock:
            if transition.transition == "recalculated":
                since_recalculated.clear()
            else:
                instant = (transition.transition, transition.threshold, transition.time)
                if instant in since_recalculated:
                    findings.duplicated.append(transition)
                since_recalculated.add(instant)
            number = sequence(transition)
            if number is None:
                continue
            if last is not None and number <= last[0]:
                findings.order_violations.append((last[1], transition))
            last = (number, transition)


def sequence(transition: Transition) -> int | None:
    """The per-cycle sequence a consumer orders by (clocks.md); engines before it publish none."""
    value = transition.data.get("sequence")
    return None if value is None else int(value)


def final(transitions: list[Transition]) -> Transition:
    """A cycle's final word: the highest sequence, or without sequences the last one published."""
    if all(sequence(t) is not None for t in transitions):
        return max(transitions, key=lambda t: sequence(t) or 0)
    return transitions[-1]


def check_timers(faulted: EndState, clean: EndState, stream_start: datetime, outcomes: list[FaultOutcome],
                 findings: Findings) -> None:
    """Timers due between the stream's start and the faulted run's reading: once each, never before due."""
    def due(transitions: list[Transition]) -> dict[tuple[str, str, int, str, float | None], list[Transition]]:
        found: dict[tuple[str, str, int, str, float | None], list[Transition]] = defaultdict(list)
        for transition in transitions:
            if transition.transition in TIMER_TRANSITIONS and stream_start < transition.time <= faulted.at:
                found[transition.key].append(transition)
        return found

    expected, fired = due(clean.transitions), due(list({t.event_id: t for t in faulted.transitions}.values()))
    findings.timers_expected = len(expected)
    for key, transitions in expected.items():
        if key not in fired:
            findings.timers_missing.append(key)
        when = transitions[0].time
        if any(o.began_at <= when <= o.recovered_at for o in outcomes):
            findings.timers_due_in_downtime += 1
    for key, transitions in fired.items():
        if len(transitions) > 1:
            findings.timers_twice.append(key)
        findings.timers_early.extend(t for t in transitions if t.produced < t.time - timedelta(seconds=0.5))


def check(faulted: EndState, clean: EndState, sent: SenderRecord, outcomes: list[FaultOutcome],
          stream_start: datetime) -> Findings:
    findings = Findings(rejected=dict(sent.rejected))
    findings.lost = sorted(((event_id, at) for event_id, at in sent.acknowledged.items()
                            if event_id not in faulted.published_ids), key=lambda lost: lost[1])
    check_transitions(faulted.transitions, findings)
    findings.clock_mismatches = sorted(t for t in clean.clocks if faulted.clocks.get(t) != clean.clocks[t])
    finals = {k: final(v) for k, v in by_clock(faulted.transitions).items()}
    for key, transitions in by_clock(clean.transitions).items():
        last, other = final(transitions), finals.get(key)
        if other is None or any(last.data.get(f) != other.data.get(f) for f in FINAL_FIELDS):
            findings.final_mismatches.append(key)
    findings.slo_mismatches = differences(faulted.slos, clean.slos)
    findings.report_differences = differences(faulted.report, clean.report)
    check_timers(faulted, clean, stream_start, outcomes, findings)
    return findings


def attribute(at: datetime, outcomes: list[FaultOutcome], grace: timedelta = timedelta(seconds=30)) -> str:
    """The fault during (or just after) which something happened; '-' between faults."""
    for outcome in outcomes:
        if outcome.began_at <= at <= outcome.recovered_at + grace:
            return outcome.kind
    return "-"
