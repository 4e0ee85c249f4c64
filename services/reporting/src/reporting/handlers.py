"""Reporting's handlers: fold every consumed event into the read models, one transaction per batch.

A batch of records is one transaction: for each event, the tenant's shared advisory lock (period close takes
it exclusively, so a close never races an event into a period it is freezing), the inbox row, the effect, and a
late-change note when it moved the counts of a period already closed; the notifications the events make due
(reporting.notifications.planning); then the batch's summed rollup deltas.
If anything fails, the whole batch rolls back: effects and inbox rows commit together, so no event is lost or
applied twice. Idempotent: a redelivered event finds its inbox row and changes nothing. One commit per batch
rather than per event is what lets one consumer keep up with hundreds of events a second on a small machine.
The consumer pipeline (`slm_shared.consumer`) retries a failed batch, splits it, and sets aside the one event
the database refuses, so it never blocks its partition nor the good events around it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel

from reporting.domain.rollups import (
    Deltas,
    Effect,
    cycle_key,
    judge_clocks,
    judge_tickets,
    ticket_heads,
    ticket_key,
)
from reporting.notifications.planned_rows import DEFAULT_LATENESS
from reporting.ports import ReadModelRepository, ReadModelUnits
from slm_shared.consumer import Record, parse_batch
from slm_shared.events import (
    CLOCK_EVENT,
    FEEDBACK_EVENT,
    SLO_ALERT_EVENT,
    SLO_STATUS_EVENT,
    TICKET_EVENT,
    ClockTransitionData,
    CloudEvent,
    FeedbackData,
    SloAlertData,
    SloStatusData,
    TicketSnapshotData,
    parse_data,
)
from slm_shared.logging import log_context
from slm_shared.time_source import Now, utc_now
from slm_shared.tracing import TraceContext, consuming

if TYPE_CHECKING:
    from datetime import datetime

    from reporting.domain.notification_sending import Lateness

log = logging.getLogger(__name__)

Apply = Callable[[ReadModelRepository, CloudEvent, BaseModel], Awaitable[Effect]]


async def _feedback(read_models: ReadModelRepository, event: CloudEvent, data: BaseModel) -> Effect:
    assert isinstance(data, FeedbackData)
    await read_models.add_feedback(event, data)
    return Effect((event.time,))


async def _slo_status(read_models: ReadModelRepository, event: CloudEvent, data: BaseModel) -> Effect:
    assert isinstance(data, SloStatusData)
    await read_models.add_slo_status(event, data)
    return Effect((event.time,))


async def _slo_alert(read_models: ReadModelRepository, event: CloudEvent, data: BaseModel) -> Effect:
    assert isinstance(data, SloAlertData)
    await read_models.add_slo_alert(event, data)
    return Effect((event.time,))


APPLICABLE = frozenset({TICKET_EVENT, CLOCK_EVENT, FEEDBACK_EVENT, SLO_STATUS_EVENT, SLO_ALERT_EVENT})

# Ticket snapshots and clock transitions are applied a batch at a time (`apply_tickets`, `apply_clocks`);
# the others one by one.
APPLIERS: dict[str, Apply] = {
    FEEDBACK_EVENT: _feedback,
    SLO_STATUS_EVENT: _slo_status,
    SLO_ALERT_EVENT: _slo_alert,
}


async def apply_clocks(
    read_models: ReadModelRepository, deltas: Deltas, items: Sequence[tuple[CloudEvent, ClockTransitionData]]
) -> list[Effect]:
    """The batch's cycles read (locked) in one statement, judged in order (`rollups.judge_clocks`), written in
    one."""
    if not items:
        return []
    stored = await read_models.lock_cycles(sorted({cycle_key(event, data) for event, data in items}))
    effects, changed = judge_clocks(deltas, items, stored)
    await read_models.save_cycles(changed)
    return effects


async def apply_tickets(
    read_models: ReadModelRepository, deltas: Deltas, items: Sequence[tuple[CloudEvent, TicketSnapshotData]]
) -> list[Effect]:
    """Add snapshots to their tickets' timelines, re-derive the volume transitions and move the rollup
    (`rollups.judge_tickets`): one statement per table for the whole batch."""
    if not items:
        return []
    sequences = await read_models.add_snapshots(items)
    tickets = sorted({ticket_key(event, data) for event, data in items})
    timelines = await read_models.timelines(tickets)
    effects, transitions = judge_tickets(
        deltas, items, sequences, timelines, await read_models.take_transitions(tickets)
    )
    await read_models.store_transitions(transitions)
    await read_models.store_heads(ticket_heads(timelines), {event.id: data.assignment_group for event, data in items})
    return effects


class ReadModels:
    """Consumes sla.clocks.v1, itsm.tickets.v1, itsm.feedback.v1, slo.status.v1 and slo.alerts.v1."""

    def __init__(self, units: ReadModelUnits, now: Now = utc_now, lateness: Lateness = DEFAULT_LATENESS) -> None:
        self._units = units
        self._now = now
        self._lateness = lateness

    async def on_records(self, records: Sequence[Record]) -> list[str]:
        """A batch of records in one transaction (`apply_batch`); one outcome per record. If it fails, the
        consumer pipeline retries it, then splits it and sets aside the one record that fails alone."""
        batch = parse_batch(records, APPLICABLE)
        if batch.events:
            applied = await self.apply_batch(batch.events, batch.trace_parents(), batch.data)
            for position, outcome in zip(batch.positions, applied, strict=True):
                batch.outcomes[position] = outcome
        return batch.outcomes

    async def apply_batch(
        self,
        events: list[CloudEvent],
        parents: Mapping[tuple[str, str, str], TraceContext] | None = None,
        validated: Sequence[BaseModel] | None = None,
    ) -> list[str]:
        """One transaction: the tenants' shared locks, the inbox rows of the batch in one statement, the ticket
        snapshots together, the clock transitions together, the other events one by one in order, each event's
        counters and late-change notes, then the summed rollup deltas and the batch's notes in one statement
        each. `parents`: each event's producer trace context, for its span; `validated`: each event's data as
        the consumer pipeline validated it (validated here when not given)."""
        applicable = [event for event in events if event.type in APPLICABLE]
        if validated is None:
            data = {event.dedup_key: parse_data(event) for event in applicable}
        else:
            data = {
                event.dedup_key: model
                for event, model in zip(events, validated, strict=True)
                if event.type in APPLICABLE
            }
        async with self._units() as uow:
            closed: dict[str, list[tuple[datetime, datetime]]] = {}
            for tenant in sorted({event.tenantid for event in applicable}):  # one lock order for every replica
                await uow.read_models.lock_tenant_shared(tenant)
                closed[tenant] = await uow.read_models.closed_periods(tenant)
            # Feedback takes its customer from the ticket, and a snapshot writes the ticket's customer onto its
            # feedback: on two replicas at once, each missed the other's uncommitted row and the answer kept no
            # customer. Both hold the ticket's lock.
            await uow.read_models.lock_tickets(
                sorted(
                    {
                        (event.tenantid, model.ticket_id)
                        for event in applicable
                        if isinstance(model := data[event.dedup_key], TicketSnapshotData | FeedbackData)
                    }
                )
            )
            fresh = {event.dedup_key for event in await uow.inbox.first_deliveries(applicable)}
            firsts: dict[tuple[str, str, str], CloudEvent] = {}  # a key repeated in the batch applies once
            for event in applicable:
                if event.dedup_key in fresh:
                    firsts.setdefault(event.dedup_key, event)
            deltas = Deltas()
            received_at = self._now()  # one instant for the batch: its events are received together
            tickets = [
                (event, TicketSnapshotData.model_validate(data[key]))
                for key, event in firsts.items()
                if event.type == TICKET_EVENT
            ]
            clocks = [
                (event, ClockTransitionData.model_validate(data[key]))
                for key, event in firsts.items()
                if event.type == CLOCK_EVENT
            ]
            together = dict(
                zip(
                    [event.dedup_key for event, _ in (*tickets, *clocks)],
                    [
                        *await apply_tickets(uow.read_models, deltas, tickets),
                        *await apply_clocks(uow.read_models, deltas, clocks),
                    ],
                    strict=True,
                )
            )
            outcomes: list[str] = []
            for event in events:
                key = event.dedup_key
                if event.type not in APPLICABLE:
                    outcomes.append("ignored")
                    continue
                if firsts.get(key) is not event:
                    outcomes.append("duplicate")
                    continue
                ticket = event.data.get("ticket_id")
                with (
                    consuming(
                        f"apply {event.type}",
                        (parents or {}).get(key),
                        attributes={"slm.tenant": event.tenantid, "slm.event_id": event.id},
                    ),
                    log_context(
                        tenant=event.tenantid, event_id=event.id, ticket_id=ticket if isinstance(ticket, str) else None
                    ),
                ):
                    effect = (
                        together[key]
                        if key in together
                        else await APPLIERS[event.type](uow.read_models, event, data[key])
                    )
                    deltas.note(closed[event.tenantid], event, effect, received_at)
                outcomes.append("applied")
            # The notifications these events make due commit with the read-model change that caused them.
            await uow.notifications.plan_batch(
                clocks,
                [
                    (event, SloAlertData.model_validate(data[key]))
                    for key, event in firsts.items()
                    if event.type == SLO_ALERT_EVENT
                ],
                received_at,
                self._lateness,
            )
            await uow.read_models.flush(deltas)
            await uow.commit()
        if deltas.late_changes:  # one line per batch: a replay into closed periods would log every event
            log.info(
                "%d late events change closed periods %s of tenants %s",
                len({row["event_id"] for row in deltas.late_changes}),
                sorted({row["period_start"].isoformat() for row in deltas.late_changes}),
                sorted({row["tenant_id"] for row in deltas.late_changes}),
            )
        return outcomes
