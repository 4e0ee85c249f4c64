"""The sla-engine's handlers: ticket snapshots and due timers in, clock transitions out through the outbox.

Every path ends in `reconcile_many`: load the touched tickets' stored state in bulk, let the pure
`reconcile_ticket` decide what the timeline now implies (new transitions; `recalculated` for published ones a
late event proved wrong; the next timer), and write it back in bulk with the outbox rows. Because the result
depends only on the timeline, out-of-order, late and duplicate deliveries give exactly the in-order result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter, Histogram
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sla_engine import tables
from sla_engine.config import BundleCache
from sla_engine.domain.clocks import Clock
from sla_engine.domain.timeline import TicketSnapshot
from sla_engine.reconciliation import ConfigRef, Reconciliation, reconcile_ticket
from sla_engine.repository import SqlSlaRepository
from sla_engine.timeline_cache import TimelineCache
from slm_shared.consumer import parse_batch
from slm_shared.events import TICKET_EVENT, CloudEvent, TicketSnapshotData
from slm_shared.inbox import Inbox
from slm_shared.outbox import Outbox, traced
from slm_shared.tracing import TraceContext, tracer

log = logging.getLogger(__name__)

TRANSITIONS_EMITTED = Counter("slm_clock_transitions_total", "Clock transitions published", ["transition"])
TIMER_LATENESS = Histogram(
    "slm_timer_lateness_seconds", "Fired minus due for durable timers",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)

Now = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def snapshot_of(event: CloudEvent) -> TicketSnapshot:
    data = TicketSnapshotData.model_validate(event.data)
    return TicketSnapshot(
        event_id=event.id, time=event.time, arrival=0, ticket_id=data.ticket_id, action=data.action,
        kind=data.kind, status=data.status, priority=data.priority, service=data.service,
        customer=data.customer, assignment_group=data.assignment_group, assignee=data.assignee,
        attributes=data.attributes,
    )


class ClockKeeper:
    """Keeps every ticket's published clock transitions equal to what its timeline implies."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], bundles: BundleCache, now: Now = utc_now) -> None:
        self._sessions = sessions
        self._bundles = bundles
        self._now = now
        self._outbox = Outbox(tables.outbox)
        self._inbox = Inbox(tables.inbox, "sla-engine.tickets")
        self._timelines = TimelineCache()  # decoded timeline rows of this database, across batches

    async def on_ticket_records(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> list[str]:
        """Business rule: each snapshot joins its ticket's timeline, then each touched ticket is reconciled.

        One transaction for the batch: the inbox drops redelivered ids, the new snapshots are stored, and every
        touched ticket of a configured tenant is reconciled once, under its lock, in a stable order (so two
        consumers never deadlock). Idempotent: a redelivered batch changes nothing. Returns one outcome per
        record.
        """
        batch = parse_batch(records, {TICKET_EVENT})
        if not batch.events:
            return batch.outcomes
        async with self._sessions() as session, session.begin():
            repository = SqlSlaRepository(session)
            fresh = await self._inbox.first_deliveries(session, batch.events)
            await repository.add_snapshots([(event.tenantid, event.source, snapshot_of(event)) for event in fresh])
            touched = sorted({(event.tenantid, str(event.data["ticket_id"])) for event in fresh})
            # A ticket's reconciliation continues the trace of its newest event in the batch.
            parents = batch.trace_parents()
            trace_of = {(event.tenantid, str(event.data["ticket_id"])): parents[event.dedup_key] for event in fresh}
            configured = await repository.configured_tenants({tenant for tenant, _ in touched})
            # Tenants with no configuration yet: stored; a later apply with recalculation picks them up.
            touched = [(tenant, ticket) for tenant, ticket in touched if tenant in configured]
            await repository.lock_tickets(touched)
            await self.reconcile_many(session, touched, self._now(), trace_of)
        return batch.mark_duplicates(fresh)

    async def fire_due_timers(self, limit: int) -> int:
        """Fire the timers due now: one transaction, each ticket under its lock; returns tickets fired.

        A ticket whose lock another worker holds is skipped: that worker reconciles it and reschedules.
        """
        now = self._now()
        async with self._sessions() as session, session.begin():
            repository = SqlSlaRepository(session)
            due = {(t.tenant_id, t.ticket_id): t for t in await repository.due_timers(now, limit)}
            locked = [due[pair] for pair in await repository.try_lock_tickets(list(due))]
            await self.reconcile_many(session, [(t.tenant_id, t.ticket_id) for t in locked], now)
        fired_at = self._now()
        for timer in locked:
            TIMER_LATENESS.observe(max(0.0, (fired_at - timer.due_at).total_seconds()))
        return len(locked)

    async def reconcile(self, session: AsyncSession, tenant_id: str, ticket_id: str, now: datetime) -> list[Clock]:
        """Reconcile one ticket (recalculation, tests); the caller holds its lock."""
        results = await self.reconcile_many(session, [(tenant_id, ticket_id)], now)
        return results[0].clocks if results else []

    async def reconcile_many(
        self, session: AsyncSession, tickets: Sequence[tuple[str, str]], now: datetime,
        trace_of: Mapping[tuple[str, str], TraceContext] | None = None,
    ) -> list[Reconciliation]:
        """Publish what each ticket's timeline now implies and reschedule its timer; callers hold the locks.

        A fault in one ticket's evaluation (pure code) is logged and skips only that ticket: its events are kept
        and its next event retries. Database faults fail the transaction, which the caller's delivery retries.
        """
        repository = SqlSlaRepository(session, self._timelines)
        results: list[Reconciliation] = []
        failed: list[tuple[str, str]] = []
        for state, config in await repository.load_states(tickets):
            ticket = (state.tenant_id, state.ticket_id)
            try:
                with tracer().start_as_current_span(
                    "reconcile ticket", context=(trace_of or {}).get(ticket),
                    attributes={"slm.tenant": state.tenant_id, "slm.ticket_id": state.ticket_id},
                ):
                    if config is not None:
                        state.config = ConfigRef(config.version, self._bundles.get(config))
                    result = reconcile_ticket(state, now)
                    result.outgoing[:] = traced(result.outgoing)  # the transitions carry this span's trace
                results.append(result)
            except Exception:  # a bug in one ticket's evaluation must not block the others
                log.exception("reconciling %s/%s failed; its events are kept and the next event retries",
                              state.tenant_id, state.ticket_id)
                failed.append(ticket)
        await self._outbox.add(session, [event for result in results for event in result.outgoing])
        await repository.save_reconciliations(results, now)
        # A failing ticket's timer would come due again at once and spin the timer loop: drop it instead.
        await repository.clear_timers(failed)
        for result in results:
            for transition in result.new_transitions:
                TRANSITIONS_EMITTED.labels(transition).inc()
        return results
