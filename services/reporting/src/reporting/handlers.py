"""Reporting's handlers: fold every consumed event into the read models, one transaction per batch.

A batch of records is one transaction: for each event, the tenant's shared advisory lock (period close takes
it exclusively, so a close never races an event into a period it is freezing), the inbox row, the effect, and a
late-change note when it moved the counts of a period already closed; the notifications the events make due
(reporting.notifications); then the batch's summed rollup deltas.
If anything fails, the whole batch rolls back: effects and inbox rows commit together, so no event is lost or
applied twice. Idempotent: a redelivered event finds its inbox row and changes nothing. One commit per batch
rather than per event is what lets one consumer keep up with hundreds of events a second on a small machine.
The consumer pipeline (`slm_shared.consumer`) retries a failed batch, splits it, and sets aside the one event
the database refuses, so it never blocks its partition nor the good events around it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from reporting import repository, tables
from reporting.domain.notifications import Lateness
from reporting.notifications import DEFAULT_LATENESS, plan_batch
from reporting.repository import Deltas, Effect
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
from slm_shared.inbox import Inbox
from slm_shared.logging import log_context
from slm_shared.tracing import TraceContext, consuming

log = logging.getLogger(__name__)

Now = Callable[[], datetime]
Apply = Callable[[AsyncSession, Deltas, CloudEvent, BaseModel], Awaitable[Effect]]


def utc_now() -> datetime:
    return datetime.now(UTC)


async def _feedback(session: AsyncSession, deltas: Deltas, event: CloudEvent, data: BaseModel) -> Effect:
    assert isinstance(data, FeedbackData)
    return await repository.apply_feedback(session, deltas, event, data)


async def _slo_status(session: AsyncSession, deltas: Deltas, event: CloudEvent, data: BaseModel) -> Effect:
    assert isinstance(data, SloStatusData)
    return await repository.apply_slo_status(session, deltas, event, data)


async def _slo_alert(session: AsyncSession, deltas: Deltas, event: CloudEvent, data: BaseModel) -> Effect:
    assert isinstance(data, SloAlertData)
    return await repository.apply_slo_alert(session, deltas, event, data)


APPLICABLE = frozenset({TICKET_EVENT, CLOCK_EVENT, FEEDBACK_EVENT, SLO_STATUS_EVENT, SLO_ALERT_EVENT})

# Ticket snapshots and clock transitions are applied a batch at a time (`apply_tickets`, `apply_clocks`);
# the others one by one.
APPLIERS: dict[str, Apply] = {
    FEEDBACK_EVENT: _feedback,
    SLO_STATUS_EVENT: _slo_status,
    SLO_ALERT_EVENT: _slo_alert,
}


class ReadModels:
    """Consumes sla.clocks.v1, itsm.tickets.v1, itsm.feedback.v1, slo.status.v1 and slo.alerts.v1."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], now: Now = utc_now,
                 lateness: Lateness = DEFAULT_LATENESS) -> None:
        self._sessions = sessions
        self._now = now
        self._lateness = lateness
        self._inbox = Inbox(tables.inbox, "reporting.read-models")

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
        self, events: list[CloudEvent], parents: Mapping[tuple[str, str, str], TraceContext] | None = None,
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
            data = {event.dedup_key: model for event, model in zip(events, validated, strict=True)
                    if event.type in APPLICABLE}
        async with self._sessions() as session, session.begin():
            closed: dict[str, list[tuple[datetime, datetime]]] = {}
            for tenant in sorted({event.tenantid for event in applicable}):  # one lock order for every replica
                await repository.lock_tenant_shared(session, tenant)
                closed[tenant] = await repository.closed_periods(session, tenant)
            fresh = {event.dedup_key for event in await self._inbox.first_deliveries(session, applicable)}
            firsts: dict[tuple[str, str, str], CloudEvent] = {}  # a key repeated in the batch applies once
            for event in applicable:
                if event.dedup_key in fresh:
                    firsts.setdefault(event.dedup_key, event)
            deltas = Deltas()
            received_at = self._now()  # one instant for the batch: its events are received together
            tickets = [(event, TicketSnapshotData.model_validate(data[key]))
                       for key, event in firsts.items() if event.type == TICKET_EVENT]
            clocks = [(event, ClockTransitionData.model_validate(data[key]))
                      for key, event in firsts.items() if event.type == CLOCK_EVENT]
            together = dict(zip(
                [event.dedup_key for event, _ in (*tickets, *clocks)],
                [*await repository.apply_tickets(session, deltas, tickets),
                 *await repository.apply_clocks(session, deltas, clocks)], strict=True))
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
                with consuming(f"apply {event.type}", (parents or {}).get(key),
                               attributes={"slm.tenant": event.tenantid, "slm.event_id": event.id}), \
                        log_context(tenant=event.tenantid, event_id=event.id,
                                    ticket_id=ticket if isinstance(ticket, str) else None):
                    effect = (together[key] if key in together
                              else await APPLIERS[event.type](session, deltas, event, data[key]))
                    self._note(deltas, closed[event.tenantid], event, effect, received_at)
                outcomes.append("applied")
            # The notifications these events make due commit with the read-model change that caused them.
            await plan_batch(session, clocks, [
                (event, SloAlertData.model_validate(data[key]))
                for key, event in firsts.items() if event.type == SLO_ALERT_EVENT], received_at,
                self._lateness)
            await repository.flush(session, deltas)
        if deltas.late_changes:  # one line per batch: a replay into closed periods would log every event
            log.info("%d late events change closed periods %s of tenants %s",
                     len({row["event_id"] for row in deltas.late_changes}),
                     sorted({row["period_start"].isoformat() for row in deltas.late_changes}),
                     sorted({row["tenant_id"] for row in deltas.late_changes}))
        return outcomes

    def _note(self, deltas: Deltas, closed: list[tuple[datetime, datetime]], event: CloudEvent, effect: Effect,
              received_at: datetime) -> None:
        """The event's counters, and a late-change note when it moved the counts of a period already closed
        (written with the batch's deltas: one statement for all of them)."""
        late = repository.periods_holding(closed, effect.changed_at)
        if late:
            deltas.note_late_change(event, late, received_at)
        deltas.count_event(event, effect, bool(late), received_at)
