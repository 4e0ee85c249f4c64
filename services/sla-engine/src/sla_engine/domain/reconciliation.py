"""What a ticket's timeline implies for what was already published: pure, no I/O.

Given the ticket's stored state (timeline, configuration, transitions already published, clocks as last
saved) and the instant, `reconcile_ticket` says what to publish (`Publication`s: new transitions at their own
instants; `recalculated` for published ones a late event proved wrong), which clocks now stand and when the
ticket's timer is next due. The handlers load states in bulk, turn its publications into `sla.clock.v1` events
and its clocks into rows (clocks/publication.py), and save them in bulk around it.

Every event of a cycle carries the next number of the cycle's `sequence` (docs/clocks.md): within one
reconciliation the new transitions in event-time order, then the `recalculated` ones, so the cycle's highest
sequence always carries its current state. Event ids include the sequence: unique per source, and the same
for a re-publication of the same event (the relay retrying, a rolled-back reconciliation redone).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sla_engine.domain.bundle import Bundle
from sla_engine.domain.clocks import (
    Clock,
    Transition,
    TransitionKey,
    diff_transitions,
    evaluate_timeline,
    transition_key,
)
from sla_engine.domain.timeline import TicketSnapshot

CycleKey = tuple[str, str, int]  # policy, metric, cycle


@dataclass(frozen=True)
class ConfigRef:
    version: int
    bundle: Bundle


@dataclass
class TicketState:
    """Everything stored about one ticket that reconciling it reads."""

    tenant_id: str
    ticket_id: str
    timeline: list[TicketSnapshot] = field(default_factory=list)
    config: ConfigRef | None = None
    pinned: bool = False
    emitted: set[TransitionKey] = field(default_factory=set)
    saved: dict[CycleKey, dict[str, Any]] = field(default_factory=dict)
    sequences: dict[CycleKey, int] = field(default_factory=dict)  # events published per cycle so far


@dataclass(frozen=True)
class Publication:
    """One `sla.clock.v1` event to publish, as the domain decides it: the cycle's transition (or `recalculated`)
    at its instant, with the clock as it then stood and the cycle's next `sequence`.

    `clock` is None for a cycle the timeline no longer implies: `voided` is its last saved payload, published
    again as cancelled (it counts nowhere)."""

    cycle: CycleKey
    transition: str
    at: datetime
    sequence: int
    clock: Clock | None
    threshold: int | None = None
    retracts: TransitionKey | None = None
    voided: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Reconciliation:
    """What one ticket's timeline implies at an instant: publications, the clocks now, the next timer."""

    tenant_id: str
    ticket_id: str
    clocks: list[Clock]
    publications: list[Publication]
    published: list[TransitionKey]
    retracted: list[TransitionKey]
    timer: tuple[datetime, str] | None
    pin_version: int | None  # set when the ticket is pinned to a version for the first time
    first_event_at: datetime | None
    sequences: dict[CycleKey, int] = field(default_factory=dict)  # the cycles that published: their new count


def cycle_of(clock: Clock | Transition | TransitionKey) -> CycleKey:
    return (clock.policy_id, clock.metric, clock.cycle)


def reconcile_ticket(state: TicketState, now: datetime) -> Reconciliation:
    """The publications, clocks and timer that make the published record match the timeline at `now`."""
    if state.config is None or not state.timeline:
        return Reconciliation(state.tenant_id, state.ticket_id, [], [], [], [], None, None, None)
    sequences = _Sequences(state.sequences)
    bundle, version = state.config.bundle, state.config.version
    emitted = {transition_key(key) for key in state.emitted}
    # One evaluation also keeps, for each transition not published yet, its clock at its own instant. Published
    # payloads and clock rows carry no explanation, so none is written (the clocks API explains on request).
    evaluation = evaluate_timeline(
        state.timeline,
        bundle,
        policy_version=version,
        at=now,
        watch=lambda transition: transition.key not in emitted,
        explain=False,
    )
    clocks = evaluation.clocks
    diff = diff_transitions(state.emitted, (t for c in clocks for t in c.transitions))
    by_cycle = {cycle_of(c): c for c in clocks}

    publications: list[Publication] = []
    last_new: dict[CycleKey, tuple[TransitionKey, Clock]] = {}
    for transition in sorted(diff.new, key=lambda t: (t.at, t.cycle)):
        # Published with the clock as it stood at the transition's instant (DESIGN 2.4: event time).
        cycle = cycle_of(transition)
        at_transition = evaluation.clock_when(transition)
        publications.append(
            Publication(
                cycle, transition.transition, transition.at, sequences.next(cycle), at_transition, transition.threshold
            )
        )
        last_new[cycle] = (transition.key, at_transition)
    recalculated: set[CycleKey] = set()
    for key in sorted(diff.retracted, key=lambda k: (k.at, k.cycle)):
        cycle = cycle_of(key)
        if cycle in by_cycle:
            publications.append(
                Publication(cycle, "recalculated", now, sequences.next(cycle), by_cycle[cycle], retracts=key)
            )
            recalculated.add(cycle)
        elif cycle in state.saved:
            publications.append(
                Publication(
                    cycle, "recalculated", now, sequences.next(cycle), None, retracts=key, voided=state.saved[cycle]
                )
            )
    for cycle, clock in by_cycle.items():
        if cycle not in recalculated and _published_state_is_stale(clock, last_new.get(cycle), state.saved.get(cycle)):
            publications.append(Publication(cycle, "recalculated", now, sequences.next(cycle), clock))
    return Reconciliation(
        tenant_id=state.tenant_id,
        ticket_id=state.ticket_id,
        clocks=clocks,
        publications=publications,
        published=[t.key for t in diff.new],
        retracted=list(diff.retracted),
        timer=_next_timer(clocks, now),
        pin_version=None if state.pinned else version,
        first_event_at=state.timeline[0].time,
        sequences=sequences.advanced,
    )


class _Sequences:
    """Numbers each cycle's events on from what the cycle already published."""

    def __init__(self, published: dict[CycleKey, int]) -> None:
        self._published = published
        self.advanced: dict[CycleKey, int] = {}

    def next(self, cycle: CycleKey) -> int:
        self.advanced[cycle] = self.advanced.get(cycle, self._published.get(cycle, 0)) + 1
        return self.advanced[cycle]


def _published_state_is_stale(
    clock: Clock, last_new: tuple[TransitionKey, Clock] | None, saved: dict[str, Any] | None
) -> bool:
    """Whether the cycle's highest sequence so far would not say where the clock stands (then a `recalculated`
    carrying the clock follows): a late transition published after later ones carries a past state, and a
    stopped cycle's frozen figures may change under a late event without any transition changing."""
    if last_new is not None and last_new[0] != clock.transitions[-1].key:
        return True
    if clock.state in ("running", "paused"):
        # Their figures between transitions are published with the next one, as in order. Where they stand
        # can still change with no new transition: a late event at an instant whose pause/resume flip was
        # already published (the flip's keys are all published, the state after them is not the same).
        return last_new is None and saved is not None and _stands_elsewhere(saved, clock)
    if last_new is not None:  # published with the clock at its instant: the same figures as a payload of it
        return _clock_apart(last_new[1], clock)
    return saved is not None and _differs(saved, clock)


# Where a stopped cycle stands, as its payload says it (clocks/publication.py `clock_payload`); compared without
# building a payload, as this runs for every stopped cycle of every reconciled ticket.
_FIGURES = (
    "policy_version",
    "agreement",
    "state",
    "breached",
    "target_seconds",
    "elapsed_seconds",
    "remaining_seconds",
    "service",
    "customer",
    "priority",
    "kind",
    "calendar",
)
_INSTANTS = ("started_at", "due_at", "breached_at", "stopped_at")
_STANDING = ("policy_version", "agreement", "state", "breached")
_STANDING_INSTANTS = ("started_at", "breached_at", "stopped_at")


def _differs(published: Mapping[str, Any], clock: Clock) -> bool:
    return published.get("percent") != float(clock.percent) or _apart(published, clock, _FIGURES, _INSTANTS)


def _clock_apart(published: Clock, clock: Clock) -> bool:
    """Whether a clock published earlier and the clock now differ in anything a payload of them says."""
    return float(published.percent) != float(clock.percent) or any(
        getattr(published, name) != getattr(clock, name) for name in (*_FIGURES, *_INSTANTS)
    )


def _stands_elsewhere(published: Mapping[str, Any], clock: Clock) -> bool:
    """A running or paused cycle's state, breach and instants differ from what it last published."""
    return _apart(published, clock, _STANDING, _STANDING_INSTANTS)


def _apart(published: Mapping[str, Any], clock: Clock, figures: tuple[str, ...], instants: tuple[str, ...]) -> bool:
    """Whether any of these figures, or these instants (ISO text in a payload), differ from the clock's."""
    if any(published.get(name) != getattr(clock, name) for name in figures):
        return True
    return any(_instant(published.get(name)) != getattr(clock, name) for name in instants)


def _instant(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _next_timer(clocks: list[Clock], now: datetime) -> tuple[datetime, str] | None:
    upcoming = [due for c in clocks if (due := c.next_due_transition(now)) is not None]
    if not upcoming:
        return None
    name, at, _ = min(upcoming, key=lambda item: item[1])
    return at, name
