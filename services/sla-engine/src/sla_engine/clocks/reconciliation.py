"""What a ticket's timeline implies for what was already published: pure, no I/O.

Given the ticket's stored state (timeline, configuration, transitions already published, clocks as last
saved) and the instant, `reconcile_ticket` says which `sla.clock.v1` events to publish (new transitions at
their own instants; `recalculated` for published ones a late event proved wrong), which clock rows to keep
and when the ticket's timer is next due. The handlers load states and save results in bulk around it.

Every event of a cycle carries the next number of the cycle's `sequence` (docs/clocks.md): within one
reconciliation the new transitions in event-time order, then the `recalculated` ones, so the cycle's highest
sequence always carries its current state. Event ids include the sequence: unique per source, and the same
for a re-publication of the same event (the relay retrying, a rolled-back reconciliation redone).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
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
from slm_shared import topics
from slm_shared.events import CLOCK_EVENT, ClockTransitionData, RetractedTransition, make_event
from slm_shared.outbox import OutgoingEvent, OutgoingRecord

SOURCE = "slm://sla-engine"
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
class Reconciliation:
    tenant_id: str
    ticket_id: str
    clocks: list[Clock]
    outgoing: list[OutgoingEvent]
    published: list[TransitionKey]
    retracted: list[TransitionKey]
    timer: tuple[datetime, str] | None
    pin_version: int | None  # set when the ticket is pinned to a version for the first time
    first_event_at: datetime | None
    sequences: dict[CycleKey, int] = field(default_factory=dict)  # the cycles that published: their new count
    rows: tuple[dict[str, Any], ...] | None = None  # the clock rows, where `compact` left the clocks behind
    records: tuple[OutgoingRecord, ...] | None = None  # the events serialized, where `compact` left them behind

    @property
    def new_transitions(self) -> list[str]:
        return [key.transition for key in self.published]

    def clock_rows(self) -> list[dict[str, Any]]:
        """The `clocks` table rows of this ticket (without tenant, ticket and time of writing)."""
        return list(self.rows) if self.rows is not None else [clock_row(clock) for clock in self.clocks]

    def outbox_records(self) -> list[OutgoingEvent | OutgoingRecord]:
        """The outbox rows to add: the events, or their serialized form."""
        return list(self.records) if self.records is not None else list(self.outgoing)

    def compact(self) -> Reconciliation:
        """The same decisions, cheap to pickle across a process boundary: clock rows instead of the clocks, and
        the events serialized (unpickling the event models cost the parent as much as evaluating)."""
        return replace(self, clocks=[], rows=tuple(self.clock_rows()), outgoing=[],
                       records=tuple(item.serialized() for item in self.outgoing))


def clock_payload(
    clock: Clock, transition: str, threshold: int | None, retracts: TransitionKey | None = None,
    sequence: int | None = None,
) -> ClockTransitionData:
    retracted = None
    if retracts is not None:
        retracted = RetractedTransition(transition=retracts.transition, at=retracts.at,
                                        threshold=retracts.threshold or None)
    return ClockTransitionData(
        ticket_id=clock.ticket_id, policy_id=clock.policy_id, policy_version=clock.policy_version,
        agreement=clock.agreement, metric=clock.metric, cycle=clock.cycle, transition=transition,
        state=clock.state, breached=clock.breached, target_seconds=clock.target_seconds,
        elapsed_seconds=clock.elapsed_seconds, remaining_seconds=clock.remaining_seconds,
        percent=float(clock.percent), started_at=clock.started_at, due_at=clock.due_at,
        breached_at=clock.breached_at, stopped_at=clock.stopped_at, threshold=threshold, retracts=retracted,
        sequence=sequence, service=clock.service, customer=clock.customer, priority=clock.priority, kind=clock.kind,
        calendar=clock.calendar,
    )


def clock_row(clock: Clock) -> dict[str, Any]:
    return {
        "policy_id": clock.policy_id, "metric": clock.metric, "cycle": clock.cycle,
        "policy_version": clock.policy_version, "state": clock.state, "breached": clock.breached,
        "due_at": clock.due_at, "clock": clock_payload(clock, "recalculated", None).model_dump(mode="json"),
    }


def cycle_of(clock: Clock | Transition | TransitionKey) -> CycleKey:
    return (clock.policy_id, clock.metric, clock.cycle)


def reconcile_ticket(state: TicketState, now: datetime) -> Reconciliation:
    """The events, clock rows and timer that make the published record match the timeline at `now`."""
    if state.config is None or not state.timeline:
        return Reconciliation(state.tenant_id, state.ticket_id, [], [], [], [], None, None, None)
    sequences = _Sequences(state.sequences)
    bundle, version = state.config.bundle, state.config.version
    emitted = {transition_key(key) for key in state.emitted}
    # One evaluation also keeps, for each transition not published yet, its clock at its own instant. Published
    # payloads and clock rows carry no explanation, so none is written (the clocks API explains on request).
    evaluation = evaluate_timeline(state.timeline, bundle, policy_version=version, at=now,
                                   watch=lambda transition: transition.key not in emitted, explain=False)
    clocks = evaluation.clocks
    diff = diff_transitions(state.emitted, (t for c in clocks for t in c.transitions))
    by_cycle = {cycle_of(c): c for c in clocks}

    outgoing: list[OutgoingEvent] = []
    last_new: dict[CycleKey, tuple[TransitionKey, OutgoingEvent]] = {}
    for transition in sorted(diff.new, key=lambda t: (t.at, t.cycle)):
        # The payload is the clock as it stood at the transition's instant (DESIGN 2.4: event time).
        at_transition = evaluation.clock_when(transition)
        event = _event(state.tenant_id, at_transition, transition.transition, transition.threshold, transition.at,
                       sequence=sequences.next(cycle_of(transition)))
        outgoing.append(event)
        last_new[cycle_of(transition)] = (transition.key, event)
    recalculated: set[CycleKey] = set()
    for key in sorted(diff.retracted, key=lambda k: (k.at, k.cycle)):
        if cycle_of(key) in by_cycle:
            outgoing.append(_event(state.tenant_id, by_cycle[cycle_of(key)], "recalculated", None, now, key,
                                   sequence=sequences.next(cycle_of(key))))
            recalculated.add(cycle_of(key))
        elif cycle_of(key) in state.saved:
            outgoing.append(_voided_cycle(state.tenant_id, state.saved[cycle_of(key)], key, now,
                                          sequences.next(cycle_of(key))))
    for cycle, clock in by_cycle.items():
        if cycle not in recalculated and _published_state_is_stale(clock, last_new.get(cycle), state.saved.get(cycle)):
            outgoing.append(_event(state.tenant_id, clock, "recalculated", None, now, sequence=sequences.next(cycle)))
    return Reconciliation(
        tenant_id=state.tenant_id, ticket_id=state.ticket_id, clocks=clocks, outgoing=outgoing,
        published=[t.key for t in diff.new], retracted=list(diff.retracted), timer=_next_timer(clocks, now),
        pin_version=None if state.pinned else version, first_event_at=state.timeline[0].time,
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


def _published_state_is_stale(clock: Clock, last_new: tuple[TransitionKey, OutgoingEvent] | None,
                              saved: dict[str, Any] | None) -> bool:
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
    published = last_new[1].event.data if last_new is not None else saved
    return published is not None and _differs(published, clock)


# Where a stopped cycle stands, as its payload says it (`clock_payload`); compared without building a payload,
# as this runs for every stopped cycle of every reconciled ticket.
_FIGURES = ("policy_version", "agreement", "state", "breached", "target_seconds", "elapsed_seconds",
            "remaining_seconds", "service", "customer", "priority", "kind", "calendar")
_INSTANTS = ("started_at", "due_at", "breached_at", "stopped_at")
_STANDING = ("policy_version", "agreement", "state", "breached")
_STANDING_INSTANTS = ("started_at", "breached_at", "stopped_at")


def _differs(published: Mapping[str, Any], clock: Clock) -> bool:
    return published.get("percent") != float(clock.percent) or _apart(published, clock, _FIGURES, _INSTANTS)


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


def _voided_cycle(tenant_id: str, saved: dict[str, Any], key: TransitionKey, now: datetime,
                  sequence: int) -> OutgoingEvent:
    """A cycle the timeline no longer implies: it counts nowhere, like a cancelled one."""
    data = ClockTransitionData.model_validate({
        **saved, "transition": "recalculated", "state": "cancelled", "breached": False, "due_at": None,
        "retracts": {"transition": key.transition, "at": key.at, "threshold": key.threshold or None},
        "sequence": sequence,
    })
    event = make_event(
        event_id=f"{data.ticket_id}:{key.policy_id}:{key.metric}:{key.cycle}:{sequence}:voided"
                 f":retracts:{_retracted_part(key)}",
        source=SOURCE, event_type=CLOCK_EVENT, time=now, tenant_id=tenant_id, subject=data.ticket_id, data=data,
    )
    return OutgoingEvent(topic=topics.CLOCKS, key=topics.ticket_key(tenant_id, data.ticket_id), event=event)


def _retracted_part(key: TransitionKey) -> str:
    return f"{key.transition}:{key.threshold or 0}@{key.at.isoformat()}"


def _event(
    tenant_id: str, clock: Clock, transition: str, threshold: int | None, at: datetime,
    retracts: TransitionKey | None = None, *, sequence: int,
) -> OutgoingEvent:
    # The cycle and its sequence make the id unique; the rest says what it is. Deterministic, so the same
    # publication redone (a rolled-back reconciliation, the relay retrying) is the same event for every inbox.
    suffix = f"{sequence}:{transition}:{threshold or 0}@{at.isoformat()}"
    if retracts is not None:
        suffix += f":retracts:{_retracted_part(retracts)}"
    event = make_event(
        event_id=f"{clock.ticket_id}:{clock.policy_id}:{clock.metric}:{clock.cycle}:{suffix}",
        source=SOURCE, event_type=CLOCK_EVENT, time=at, tenant_id=tenant_id, subject=clock.ticket_id,
        data=clock_payload(clock, transition, threshold, retracts, sequence),
    )
    return OutgoingEvent(topic=topics.CLOCKS, key=topics.ticket_key(tenant_id, clock.ticket_id), event=event)
