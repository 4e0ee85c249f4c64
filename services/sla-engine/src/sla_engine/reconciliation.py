"""What a ticket's timeline implies for what was already published: pure, no I/O.

Given the ticket's stored state (timeline, configuration, transitions already published, clocks as last
saved) and the instant, `reconcile_ticket` says which `sla.clock.v1` events to publish (new transitions at
their own instants; `recalculated` for published ones a late event proved wrong), which clock rows to keep
and when the ticket's timer is next due. The handlers load states and save results in bulk around it.
"""

from __future__ import annotations

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
from slm_shared import topics
from slm_shared.events import CLOCK_EVENT, ClockTransitionData, RetractedTransition, make_event
from slm_shared.outbox import OutgoingEvent

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

    @property
    def new_transitions(self) -> list[str]:
        return [key.transition for key in self.published]


def clock_payload(
    clock: Clock, transition: str, threshold: int | None, retracts: TransitionKey | None = None
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
        service=clock.service, customer=clock.customer, priority=clock.priority, kind=clock.kind,
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
    bundle, version = state.config.bundle, state.config.version
    emitted = {transition_key(key) for key in state.emitted}
    # One evaluation also keeps, for each transition not published yet, its clock at its own instant.
    evaluation = evaluate_timeline(state.timeline, bundle, policy_version=version, at=now,
                                   watch=lambda transition: transition.key not in emitted)
    clocks = evaluation.clocks
    diff = diff_transitions(state.emitted, (t for c in clocks for t in c.transitions))
    by_cycle = {cycle_of(c): c for c in clocks}

    outgoing: list[OutgoingEvent] = []
    for transition in sorted(diff.new, key=lambda t: (t.at, t.cycle)):
        # The payload is the clock as it stood at the transition's instant (DESIGN 2.4: event time).
        at_transition = evaluation.clock_when(transition)
        outgoing.append(_event(state.tenant_id, at_transition, transition.transition, transition.threshold,
                               transition.at))
    for key in sorted(diff.retracted, key=lambda k: (k.at, k.cycle)):
        if cycle_of(key) in by_cycle:
            outgoing.append(_event(state.tenant_id, by_cycle[cycle_of(key)], "recalculated", None, now, key))
        elif cycle_of(key) in state.saved:
            outgoing.append(_voided_cycle(state.tenant_id, state.saved[cycle_of(key)], key, now))
    return Reconciliation(
        tenant_id=state.tenant_id, ticket_id=state.ticket_id, clocks=clocks, outgoing=outgoing,
        published=[t.key for t in diff.new], retracted=list(diff.retracted), timer=_next_timer(clocks, now),
        pin_version=None if state.pinned else version, first_event_at=state.timeline[0].time,
    )


def _next_timer(clocks: list[Clock], now: datetime) -> tuple[datetime, str] | None:
    upcoming = [due for c in clocks if (due := c.next_due_transition(now)) is not None]
    if not upcoming:
        return None
    name, at, _ = min(upcoming, key=lambda item: item[1])
    return at, name


def _voided_cycle(tenant_id: str, saved: dict[str, Any], key: TransitionKey, now: datetime) -> OutgoingEvent:
    """A cycle the timeline no longer implies: it counts nowhere, like a cancelled one."""
    data = ClockTransitionData.model_validate({
        **saved, "transition": "recalculated", "state": "cancelled", "breached": False, "due_at": None,
        "retracts": {"transition": key.transition, "at": key.at, "threshold": key.threshold or None},
    })
    event = make_event(
        event_id=f"{data.ticket_id}:{key.policy_id}:{key.metric}:{key.cycle}:voided:{key.transition}@{key.at.isoformat()}",
        source=SOURCE, event_type=CLOCK_EVENT, time=now, tenant_id=tenant_id, subject=data.ticket_id, data=data,
    )
    return OutgoingEvent(topic=topics.CLOCKS, key=topics.ticket_key(tenant_id, data.ticket_id), event=event)


def _event(
    tenant_id: str, clock: Clock, transition: str, threshold: int | None, at: datetime,
    retracts: TransitionKey | None = None,
) -> OutgoingEvent:
    # Deterministic ids: a re-published transition is the same event, which consumers' inboxes drop.
    suffix = f"{transition}:{threshold or 0}:{at.isoformat()}"
    if retracts is not None:
        suffix += f":retracts:{retracts.transition}@{retracts.at.isoformat()}"
    event = make_event(
        event_id=f"{clock.ticket_id}:{clock.policy_id}:{clock.metric}:{clock.cycle}:{suffix}",
        source=SOURCE, event_type=CLOCK_EVENT, time=at, tenant_id=tenant_id, subject=clock.ticket_id,
        data=clock_payload(clock, transition, threshold, retracts),
    )
    return OutgoingEvent(topic=topics.CLOCKS, key=topics.ticket_key(tenant_id, clock.ticket_id), event=event)
