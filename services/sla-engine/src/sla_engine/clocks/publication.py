"""A reconciliation as the engine writes it: its publications as `sla.clock.v1` outbox events, its clocks as
`clocks` table rows. Runs where the reconciliation was evaluated (the worker process, evaluation.py), so what
comes back to the event loop is rows and serialized events, cheap to unpickle and ready to insert."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sla_engine.domain.clocks import Clock, TransitionKey
from sla_engine.domain.reconciliation import CycleKey, Publication, Reconciliation
from slm_shared import topics
from slm_shared.events import CLOCK_EVENT, ClockTransitionData, RetractedTransition, make_event
from slm_shared.outbox import OutgoingEvent, OutgoingRecord

if TYPE_CHECKING:
    from collections.abc import Mapping

SOURCE = "slm://sla-engine"


@dataclass(frozen=True)
class ReconciledTicket:
    """One ticket's reconciliation ready to save: outbox records, clock rows, transition ledger, timer, pin.
    `clocks` are kept only when asked (a recalculation compares them); the loop's rounds need only the rows."""

    tenant_id: str
    ticket_id: str
    published: list[TransitionKey]
    retracted: list[TransitionKey]
    timer: tuple[datetime, str] | None
    pin_version: int | None
    first_event_at: datetime | None
    sequences: dict[CycleKey, int]
    rows: tuple[dict[str, Any], ...]
    records: tuple[OutgoingRecord, ...]
    clocks: list[Clock] = field(default_factory=list)

    @property
    def new_transitions(self) -> list[str]:
        return [key.transition for key in self.published]

    def clock_rows(self) -> list[dict[str, Any]]:
        """The `clocks` table rows of this ticket (without tenant, ticket and time of writing)."""
        return list(self.rows)

    def outbox_records(self) -> list[OutgoingEvent | OutgoingRecord]:
        return list(self.records)


def reconciled_ticket(result: Reconciliation, *, keep_clocks: bool = False) -> ReconciledTicket:
    """`result` mapped to what is written: the events serialized (unpickling the event models cost the parent as
    much as evaluating), clock rows instead of the clocks unless `keep_clocks`."""
    return ReconciledTicket(
        tenant_id=result.tenant_id,
        ticket_id=result.ticket_id,
        published=result.published,
        retracted=result.retracted,
        timer=result.timer,
        pin_version=result.pin_version,
        first_event_at=result.first_event_at,
        sequences=result.sequences,
        rows=tuple(clock_row(clock) for clock in result.clocks),
        records=tuple(event.serialized() for event in clock_events(result)),
        clocks=result.clocks if keep_clocks else [],
    )


def clock_events(result: Reconciliation) -> list[OutgoingEvent]:
    """The `sla.clock.v1` events of the reconciliation's publications, in their order."""
    return [_event(result.tenant_id, publication) for publication in result.publications]


def clock_payload(
    clock: Clock,
    transition: str,
    threshold: int | None,
    retracts: TransitionKey | None = None,
    sequence: int | None = None,
) -> ClockTransitionData:
    retracted = None
    if retracts is not None:
        retracted = RetractedTransition(
            transition=retracts.transition, at=retracts.at, threshold=retracts.threshold or None
        )
    return ClockTransitionData(
        ticket_id=clock.ticket_id,
        policy_id=clock.policy_id,
        policy_version=clock.policy_version,
        agreement=clock.agreement,
        metric=clock.metric,
        cycle=clock.cycle,
        transition=transition,
        state=clock.state,
        breached=clock.breached,
        target_seconds=clock.target_seconds,
        elapsed_seconds=clock.elapsed_seconds,
        remaining_seconds=clock.remaining_seconds,
        percent=float(clock.percent),
        started_at=clock.started_at,
        due_at=clock.due_at,
        breached_at=clock.breached_at,
        stopped_at=clock.stopped_at,
        threshold=threshold,
        retracts=retracted,
        sequence=sequence,
        service=clock.service,
        customer=clock.customer,
        priority=clock.priority,
        kind=clock.kind,
        calendar=clock.calendar,
    )


def clock_row(clock: Clock) -> dict[str, Any]:
    return {
        "policy_id": clock.policy_id,
        "metric": clock.metric,
        "cycle": clock.cycle,
        "policy_version": clock.policy_version,
        "state": clock.state,
        "breached": clock.breached,
        "due_at": clock.due_at,
        "clock": clock_payload(clock, "recalculated", None).model_dump(mode="json"),
    }


def _event(tenant_id: str, publication: Publication) -> OutgoingEvent:
    if publication.clock is None:
        assert publication.voided is not None
        assert publication.retracts is not None
        return _voided_cycle(tenant_id, publication.voided, publication.retracts, publication.at, publication.sequence)
    clock, sequence, retracts = publication.clock, publication.sequence, publication.retracts
    # The cycle and its sequence make the id unique; the rest says what it is. Deterministic, so the same
    # publication redone (a rolled-back reconciliation, the relay retrying) is the same event for every inbox.
    suffix = f"{sequence}:{publication.transition}:{publication.threshold or 0}@{publication.at.isoformat()}"
    if retracts is not None:
        suffix += f":retracts:{_retracted_part(retracts)}"
    event = make_event(
        event_id=f"{clock.ticket_id}:{clock.policy_id}:{clock.metric}:{clock.cycle}:{suffix}",
        source=SOURCE,
        event_type=CLOCK_EVENT,
        time=publication.at,
        tenant_id=tenant_id,
        subject=clock.ticket_id,
        data=clock_payload(clock, publication.transition, publication.threshold, retracts, sequence),
    )
    return OutgoingEvent(topic=topics.CLOCKS, key=topics.ticket_key(tenant_id, clock.ticket_id), event=event)


def _voided_cycle(
    tenant_id: str, saved: Mapping[str, Any], key: TransitionKey, now: datetime, sequence: int
) -> OutgoingEvent:
    """A cycle the timeline no longer implies: it counts nowhere, like a cancelled one."""
    data = ClockTransitionData.model_validate(
        {
            **saved,
            "transition": "recalculated",
            "state": "cancelled",
            "breached": False,
            "due_at": None,
            "retracts": {"transition": key.transition, "at": key.at, "threshold": key.threshold or None},
            "sequence": sequence,
        }
    )
    event = make_event(
        event_id=f"{data.ticket_id}:{key.policy_id}:{key.metric}:{key.cycle}:{sequence}:voided"
        f":retracts:{_retracted_part(key)}",
        source=SOURCE,
        event_type=CLOCK_EVENT,
        time=now,
        tenant_id=tenant_id,
        subject=data.ticket_id,
        data=data,
    )
    return OutgoingEvent(topic=topics.CLOCKS, key=topics.ticket_key(tenant_id, data.ticket_id), event=event)


def _retracted_part(key: TransitionKey) -> str:
    return f"{key.transition}:{key.threshold or 0}@{key.at.isoformat()}"
