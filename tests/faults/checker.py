"""The verdict: the faulted run's end state against a clean run of the same workload.

Invariants: nothing intake acknowledged is lost; no transition happens twice downstream (outside a
`recalculated`); each cycle's transitions are published in sequence order (where the engine numbers them);
clocks, final transitions, SLO statuses and the report equal the clean run's; every timer due while the faults
ran fires exactly once, never early; event ids are unique.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tests.faults.injectors import FaultOutcome
from tests.faults.observe import EndState, Transition
from tests.faults.sender import SenderRecord

TIMER_TRANSITIONS = ("warning", "breached")
# Where a cycle stands (DESIGN 2.4): what its final word, the engine's API and the report must agree on.
STATE_FIELDS = (
    "state",
    "breached",
    "target_seconds",
    "elapsed_seconds",
    "started_at",
    "due_at",
    "breached_at",
    "stopped_at",
)
REPORTED_FIELDS = (*STATE_FIELDS, "policy_version", "agreement", "priority", "service", "customer")
ClockKey = tuple[str, str, int]


@dataclass
class Findings:
    lost: list[tuple[str, datetime]] = field(default_factory=list)  # acknowledged, never published by intake
    duplicated: list[Transition] = field(default_factory=list)  # the same transition again, under a new id
    redelivered: int = 0  # the same record id twice: at-least-once delivery, absorbed by the inboxes
    id_collisions: list[str] = field(default_factory=list)  # one id, two different events
    order_violations: list[tuple[Transition, Transition]] = field(default_factory=list)
    clock_mismatches: list[str] = field(default_factory=list)  # tickets whose clocks differ from the clean run
    final_mismatches: list[ClockKey] = field(default_factory=list)  # cycles whose final word differs at `at`
    published_vs_engine: list[str] = field(default_factory=list)  # a final word that is not the engine's clock
    report_vs_engine: list[str] = field(default_factory=list)  # a report line that is not the final word
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
        return {
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "id collisions": len(self.id_collisions),
            "order violations": len(self.order_violations),
            "clock mismatches": len(self.clock_mismatches),
            "final state mismatches": len(self.final_mismatches),
            "published vs engine": len(self.published_vs_engine),
            "report vs engine": len(self.report_vs_engine),
            "SLO mismatches": len(self.slo_mismatches),
            "report differences": len(self.report_differences),
            "timers missing": len(self.timers_missing),
            "timers fired twice": len(self.timers_twice),
            "timers early": len(self.timers_early),
            "rejected": len(self.rejected),
        }


def by_clock(transitions: list[Transition]) -> dict[ClockKey, list[Transition]]:
    """Each clock's transitions in the order the engine published them (one ticket, one partition)."""
    grouped: dict[ClockKey, list[Transition]] = defaultdict(list)
    for transition in transitions:
        grouped[(transition.ticket, transition.metric, transition.cycle)].append(transition)
    return grouped


def differences(left: Any, right: Any, path: str = "") -> list[str]:
    if isinstance(left, dict) and isinstance(right, dict):
        return [
            d
            for k in sorted(set(left) | set(right), key=str)
            for d in differences(left.get(k), right.get(k), f"{path}.{k}")
        ]
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
    findings.duplicated.extend(repeated_without_correction(list(seen.values())))
    for clock in by_clock(list(seen.values())).values():
        last: tuple[int, Transition] | None = None
        for transition in clock:
            number = sequence(transition)
            if number is None:
                continue
            if last is not None and number <= last[0]:
                findings.order_violations.append((last[1], transition))
            last = (number, transition)


def repeated_without_correction(
    transitions: list[Transition], kinds: tuple[str, ...] | None = None, *, any_instant: bool = False
) -> list[Transition]:
    """Transitions published again for the same instant under a new id with no `recalculated` of their clock in
    between: a duplicated effect. A correction re-publishes on purpose (before its marker), and a late event can
    retract a warning that is then published again at its corrected instant: neither is a repeat. With
    `any_instant` (timers) a second publication at another instant counts too, unless retracted
    (`_timers_repeated`)."""
    if any_instant:
        return _timers_repeated(transitions, kinds)
    repeated = []
    for clock in by_clock(transitions).values():
        since_recalculated: set[tuple[str, float | None, datetime]] = set()
        for transition in clock:
            if transition.transition == "recalculated":
                since_recalculated.clear()
            elif kinds is None or transition.transition in kinds:
                instant = (transition.transition, transition.threshold, transition.time)
                if instant in since_recalculated:
                    repeated.append(transition)
                since_recalculated.add(instant)
    return repeated


def _timers_repeated(transitions: list[Transition], kinds: tuple[str, ...] | None) -> list[Transition]:
    """A timer transition (warning at a threshold, breach) published more times than it was retracted: each
    publication past the first that no `recalculated` of its clock retracts is a repeat, at whatever instant. The
    engine publishes a corrected transition before the `recalculated` that retracts the old one (clocks.md), so
    the order within a clock does not matter, only the count."""
    repeated = []
    for clock in by_clock(transitions).values():
        retracted: Counter[tuple[str, float | None]] = Counter()
        for transition in clock:
            retracts = transition.data.get("retracts") if transition.transition == "recalculated" else None
            if isinstance(retracts, dict):
                retracted[(str(retracts.get("transition")), retracts.get("threshold"))] += 1
        published: Counter[tuple[str, float | None]] = Counter()
        for transition in clock:
            if transition.transition != "recalculated" and (kinds is None or transition.transition in kinds):
                kind = (transition.transition, transition.threshold)
                published[kind] += 1
                if published[kind] - retracted[kind] > 1:
                    repeated.append(transition)
    return repeated


def sequence(transition: Transition) -> int | None:
    """The per-cycle sequence a consumer orders by (clocks.md); engines before it publish none."""
    value = transition.data.get("sequence")
    return None if value is None else int(value)


def final(transitions: list[Transition]) -> Transition:
    """A cycle's final word: the highest sequence (reporting's rule 5), or without sequences the last published."""
    if all(sequence(t) is not None for t in transitions):
        return max(transitions, key=lambda t: sequence(t) or 0)
    return transitions[-1]


def _instant(value: Any) -> Any:
    """Instants compare as instants: the engine's API writes `+00:00`, its events and the report `Z`."""
    if isinstance(value, str) and len(value) >= 20 and value[4] == "-" and value[10] == "T":
        return datetime.fromisoformat(value)
    return value


def state_of(fields: Mapping[str, Any], names: tuple[str, ...] = STATE_FIELDS) -> dict[str, Any]:
    return {name: _instant(fields.get(name)) for name in names}


def projected(fields: Mapping[str, Any], stood_at: datetime, at: datetime) -> dict[str, Any]:
    """A clock's state as it stands at `at`, from figures that stood at `stood_at` (an event's `time`).

    A transition carries the clock at its own instant and a `recalculated` the clock when the engine noticed
    (clocks.md): a running clock's elapsed then depends on when a run happened to publish, its state does not.
    Between its transitions a running clock gains the wall seconds in between (24x7, the workload's only
    calendar); the engine floors elapsed from whole-second boundaries, so the fraction of `stood_at` counts.
    """
    state = state_of(fields)
    if state["state"] == "running" and isinstance(state["elapsed_seconds"], int):
        moved = (at - stood_at.replace(microsecond=0)).total_seconds()
        state["elapsed_seconds"] = math.floor(state["elapsed_seconds"] + moved)
    return state


def final_states(transitions: list[Transition], at: datetime) -> dict[ClockKey, dict[str, Any]]:
    """Each cycle's final word, as the clock stands at `at`."""
    states = {}
    for key, cycle in by_clock(transitions).items():
        last = final(cycle)
        states[key] = projected(last.data, last.time, at)
    return states


def check_published_against_engine(run: str, state: EndState, findings: Findings) -> None:
    """Within one run: each cycle's final word equals the engine's own clock (its API) at the reading instant,
    and every cycle the engine has was published. A difference is the engine publishing a stale state."""
    finals = final_states(state.transitions, state.at)
    for ticket, answer in state.clocks.items():
        if not isinstance(answer, dict):
            findings.published_vs_engine.append(f"{run} {ticket}: clocks answered {answer}")
            continue
        for clock in answer.get("clocks", []):
            key = (ticket, str(clock["metric"]), int(clock["cycle"]))
            published, engine = finals.get(key), state_of(clock)
            if published is None:
                findings.published_vs_engine.append(f"{run} {key}: never published")
            elif published != engine:
                findings.published_vs_engine.append(f"{run} {key}: {_fields_apart(published, engine)}")


def _fields_apart(left: Mapping[str, Any], right: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{name} {left.get(name)} != {right.get(name)}"
        for name in sorted(set(left) | set(right))
        if left.get(name) != right.get(name)
    )


def _cycle(entry: Mapping[str, Any]) -> ClockKey:
    return (str(entry["ticket_id"]), str(entry["metric"]), int(entry["cycle"]))


def report_view(run: str, state: EndState, findings: Findings) -> dict[str, Any]:
    """The report as compared with the other run's, after checking it against this run's final words.

    Every cycle the report lists must show the engine's final word for it (counting rule 5); a cycle still
    running is shown live at the report's instant (its render time, `EndState.report_at`) when its calendar
    allows, else with the figures of that word, which stood when the run published it; for the comparison
    they are moved to the reading instant like the final words themselves. Lists of cycles compare as sets
    (their order follows the over-target seconds of running clocks). What depends on when a run read or
    evaluated, not on what it was sent, is left out: SLO evaluations (their rolling window ends when they
    ran; the bad time they counted is kept), alerts, when events were received and how many clock and SLO
    events a run's batching produced.
    """
    report = state.report
    if not isinstance(report, dict):
        return {"report": report}
    finals = {key: final(cycle) for key, cycle in by_clock(state.transitions).items()}

    def cycles(entries: list[dict[str, Any]]) -> dict[str, Any]:
        keyed = {}
        for entry in entries:
            key, entry = _cycle(entry), dict(entry)
            word = finals.get(key)
            if word is None:
                findings.report_vs_engine.append(f"{run} {key}: in the report, never published")
            else:
                names = tuple(name for name in REPORTED_FIELDS if name in entry)
                # A live running clock is shown as it stands at the report's instant (`observe`).
                live_at = state.report_at if entry.get("live") and entry.get("state") == "running" else None
                stood = {**word.data, **projected(word.data, word.time, live_at)} if live_at else word.data
                shown, published = state_of(entry, names), state_of(stood, names)
                if shown != published:
                    findings.report_vs_engine.append(f"{run} {key}: {_fields_apart(shown, published)}")
                if entry.get("state") == "running":
                    entry["elapsed_seconds"] = projected(word.data, word.time, state.at)["elapsed_seconds"]
                    for derived in ("over_target_seconds", "over_target_percent", "remaining_seconds", "percent"):
                        entry.pop(derived, None)
                # When the stored figures stood, and so whether they could be shown live at the report's instant:
                # a run's batching (a `recalculated` stamped after the instant), not what it was sent.
                entry.pop("as_of", None)
                entry.pop("live", None)
            keyed["/".join(map(str, key))] = entry
        return keyed

    view = {name: value for name, value in report.items() if name not in ("clocks", "breaches", "slos", "data_notes")}
    view["clocks"] = cycles(report.get("clocks", []))
    breaches = dict(report.get("breaches", {}))
    for listed in ("tickets", "open_breaches"):
        breaches[listed] = cycles(breaches.get(listed, []))
    view["breaches"] = breaches
    view["slos"] = {
        slo["slo_id"]: {"service": slo["service"], "objective": slo["objective"], "bad": slo["total"] - slo["good"]}
        for slo in report.get("slos", [])
    }
    view["data_notes"] = {
        row["event_type"]: {name: row[name] for name in ("events", "first_event_time", "last_event_time")}
        for row in report.get("data_notes", {}).get("events", [])
        if str(row["event_type"]).startswith("itsm.")
    }
    return view


def check_timers(
    faulted: EndState, clean: EndState, stream_start: datetime, outcomes: list[FaultOutcome], findings: Findings
) -> None:
    """Timers due between the stream's start and the faulted run's reading: once each, never before due."""

    def due(transitions: list[Transition]) -> dict[tuple[str, str, int, str, float | None], list[Transition]]:
        found: dict[tuple[str, str, int, str, float | None], list[Transition]] = defaultdict(list)
        for transition in transitions:
            if transition.transition in TIMER_TRANSITIONS and stream_start < transition.time <= faulted.at:
                found[transition.key].append(transition)
        return found

    unique = list({t.event_id: t for t in faulted.transitions}.values())
    # A timer the clean run fired and then retracted (a late event, processed after the instant there, stopped
    # the cycle before it) is not owed by the faulted run, which may have read that event in time.
    retracted = {
        (t.ticket, t.metric, t.cycle, str(t.data["retracts"].get("transition")), t.data["retracts"].get("threshold"))
        for t in clean.transitions
        if t.transition == "recalculated" and isinstance(t.data.get("retracts"), dict)
    }
    expected = {key: found for key, found in due(clean.transitions).items() if key not in retracted}
    fired = due(unique)
    findings.timers_expected = len(expected)
    for key, transitions in expected.items():
        if key not in fired:
            findings.timers_missing.append(key)
        when = transitions[0].time
        if any(o.began_at <= when <= o.recovered_at for o in outcomes):
            findings.timers_due_in_downtime += 1
    for transitions in fired.values():
        findings.timers_early.extend(t for t in transitions if t.produced < t.time - timedelta(seconds=0.5))
    repeats = repeated_without_correction(unique, TIMER_TRANSITIONS, any_instant=True)
    findings.timers_twice.extend(sorted({t.key for t in repeats if t.key in fired}, key=str))


def check(
    faulted: EndState, clean: EndState, sent: SenderRecord, outcomes: list[FaultOutcome], stream_start: datetime
) -> Findings:
    findings = Findings(rejected=dict(sent.rejected))
    findings.lost = sorted(
        ((event_id, at) for event_id, at in sent.acknowledged.items() if event_id not in faulted.published_ids),
        key=lambda lost: lost[1],
    )
    check_transitions(faulted.transitions, findings)
    findings.clock_mismatches = sorted(t for t in clean.clocks if faulted.clocks.get(t) != clean.clocks[t])
    # Both runs' final words as they stand at the same instant (the faulted run's reading).
    finals = final_states(faulted.transitions, faulted.at)
    for key, state in final_states(clean.transitions, faulted.at).items():
        if finals.get(key) != state:
            findings.final_mismatches.append(key)
    findings.final_mismatches.extend(sorted(set(finals) - set(by_clock(clean.transitions))))
    for run, end_state in (("faulted", faulted), ("clean", clean)):
        check_published_against_engine(run, end_state, findings)
    findings.slo_mismatches = differences(faulted.slos, clean.slos)
    findings.report_differences = differences(
        report_view("faulted", faulted, findings), report_view("clean", clean, findings)
    )
    check_timers(faulted, clean, stream_start, outcomes, findings)
    return findings


def attribute(at: datetime, outcomes: list[FaultOutcome], grace: timedelta = timedelta(seconds=30)) -> str:
    """The fault during (or just after) which something happened; '-' between faults."""
    for outcome in outcomes:
        if outcome.began_at <= at <= outcome.recovered_at + grace:
            return outcome.kind
    return "-"
