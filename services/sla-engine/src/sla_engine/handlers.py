"""The sla-engine's handlers: ticket snapshots and due timers in, clock transitions out through the outbox.

Consumption and evaluation are decoupled (docs/architecture.md, "A live event loop"): the ticket consumer only
stores snapshots and makes each touched ticket due now in the `timers` table, a cheap transaction, so the
partition drains and heartbeats flow whatever the bundle costs. The reconcile loop (timers.py) then takes due
tickets in rounds, round-robin across tenants, and reconciles them.

Every reconciliation goes through `reconcile_many`: load the tickets' stored state in bulk, let the pure
`reconcile_ticket` decide what the timeline now implies (new transitions; `recalculated` for published ones a
late event proved wrong; the next timer), and write it back in bulk with the outbox rows. Because the result
depends only on the timeline, out-of-order, late and duplicate deliveries give exactly the in-order result.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter, Histogram
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sla_engine import tables
from sla_engine.config import BundleCache
from sla_engine.domain.clocks import Clock
from sla_engine.fair_share import FairShare
from sla_engine.reconciliation import ConfigRef, Reconciliation, TicketState, reconcile_ticket
from sla_engine.repository import EVENTS_DUE, ConfigVersion, SqlSlaRepository, StoredSnapshot
from sla_engine.timeline_cache import TimelineCache
from slm_shared.consumer import parse_batch
from slm_shared.events import TICKET_EVENT, TicketSnapshotData
from slm_shared.outbox import Outbox, traced
from slm_shared.tracing import TraceContext, context_from_headers, tracer

log = logging.getLogger(__name__)

TRANSITIONS_EMITTED = Counter("slm_clock_transitions_total", "Clock transitions published", ["transition"])
TIMER_LATENESS = Histogram(
    "slm_timer_lateness_seconds", "Fired minus due for durable timers",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
RECONCILE_DELAY = Histogram(
    "slm_reconcile_delay_seconds", "Reconciled minus made due, for tickets made due by new snapshots",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)

Now = Callable[[], datetime]
# A ticket evaluation this short runs on the event loop: the loop is held at most this long at a time.
INLINE_SECONDS = 0.02


def utc_now() -> datetime:
    return datetime.now(UTC)


def stored_json(data: TicketSnapshotData) -> str:
    """The JSON a snapshot is stored as in `ticket_events.snapshot` (what `_snapshot_from_row` reads back)."""
    return json.dumps({
        "action": data.action, "kind": data.kind, "status": data.status, "priority": data.priority,
        "service": data.service, "customer": data.customer, "assignment_group": data.assignment_group,
        "assignee": data.assignee, "attributes": data.attributes,
    })


class ClockKeeper:
    """Keeps every ticket's published clock transitions equal to what its timeline implies."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], bundles: BundleCache, now: Now = utc_now) -> None:
        self._sessions = sessions
        self._bundles = bundles
        self._now = now
        self._outbox = Outbox(tables.outbox)
        self._inbox_consumer = "sla-engine.tickets"  # the inbox's consumer name of the ticket snapshots
        self._timelines = TimelineCache()  # decoded timeline rows of this database, across batches
        # Set when the consumer has made tickets due, so the reconcile loop wakes at once.
        self.tickets_due = asyncio.Event()
        # Evaluation is pure CPU. A tenant's tickets that take long (a large bundle) are evaluated in one worker
        # thread, so the event loop (heartbeats, HTTP, consumers) gets the interpreter back every switch interval
        # (5 ms) even while one ticket takes seconds. Cheap ones run on the loop, one ticket at a time: handing
        # them to a thread would make every socket call of the loop wait for the interpreter (the GIL convoy).
        self._evaluator = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clock-evaluation")
        self._ticket_seconds: dict[str, float] = {}  # per tenant, a moving average of one ticket's evaluation
        self._share = FairShare()  # evaluation time per tenant, shared fairly by the reconcile loop

    async def on_ticket_records(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> list[str]:
        """Business rule: each snapshot joins its ticket's timeline, and each touched ticket becomes due now.

        One transaction, one statement for the batch (`SqlSlaRepository.store_snapshots`): the inbox drops
        redelivered ids, the new snapshots are stored, and every touched ticket of a configured tenant is made
        due in `timers` under its lock (taken in a stable order, so two consumers never deadlock; the lock keeps
        a reconciliation that read the timeline before these snapshots from overwriting the due mark). Nothing
        is evaluated here: the reconcile loop does that, fairly across tenants, so the partitions drain at the
        store path's speed whatever the bundles cost. Tickets of tenants with no configuration are stored only:
        a later apply with recalculation picks them up. Idempotent: a redelivered batch changes nothing.
        Returns one outcome per record.
        """
        batch = parse_batch(records, {TICKET_EVENT})
        if not batch.events:
            return batch.outcomes
        # One row per key (its first occurrence), built from the data the pipeline validated: no evaluation and
        # no second validation here, and one statement for the whole batch (`store_snapshots`), so the store path
        # costs a few round trips per batch, not per record.
        unique: dict[tuple[str, str, str], StoredSnapshot] = {}
        for index, (event, data) in enumerate(zip(batch.events, batch.data, strict=True)):
            if event.dedup_key not in unique:
                assert isinstance(data, TicketSnapshotData)
                # A ticket's reconciliation continues the trace of its newest event in the batch.
                unique[event.dedup_key] = StoredSnapshot(event.tenantid, event.source, event.id, data.ticket_id,
                                                         event.time, stored_json(data), batch.traceparent(index))
        async with self._sessions() as session, session.begin():
            fresh, due = await SqlSlaRepository(session).store_snapshots(self._inbox_consumer, list(unique.values()),
                                                                         self._now())
        if due:
            self.tickets_due.set()
        return batch.mark_duplicates([event for event in batch.events if event.dedup_key in fresh])

    async def reconcile_due(self, limit: int, per_tenant: int, budget_seconds: float) -> int:
        """One round of the reconcile loop: due tickets (new snapshots, warning and breach timers) reconciled
        in one transaction; returns how many.

        At most `limit` tickets, `per_tenant` of each tenant (earliest due first); among them the next ticket
        evaluated is always of the tenant that used the least evaluation time (`FairShare`), and evaluation
        stops once `budget_seconds` are spent: the tickets not reached stay due for the next round, so a round
        (and the ticket locks it holds) stays short however expensive the bundle, and one tenant's backlog or
        bundle never holds another tenant's clocks back. A ticket whose lock another worker holds is skipped:
        that worker reconciles it and reschedules.
        """
        now = self._now()
        deadline = time.monotonic() + budget_seconds
        async with self._sessions() as session, session.begin():
            repository = SqlSlaRepository(session)
            due = {(t.tenant_id, t.ticket_id): t for t in await repository.due_tickets(now, limit, per_tenant)}
            locked = [due[pair] for pair in await repository.try_lock_tickets(list(due))]
            trace_of = {(t.tenant_id, t.ticket_id): context_from_headers({"traceparent": t.traceparent})
                        for t in locked if t.traceparent}
            done = await self._reconcile_until(session, [(t.tenant_id, t.ticket_id) for t in locked], now,
                                               trace_of, deadline, share=self._share)
        reconciled_at = self._now()
        for pair in done:
            lateness = max(0.0, (reconciled_at - due[pair].due_at).total_seconds())
            (RECONCILE_DELAY if due[pair].reason == EVENTS_DUE else TIMER_LATENESS).observe(lateness)
        return len(done)

    async def reconcile(self, session: AsyncSession, tenant_id: str, ticket_id: str, now: datetime) -> list[Clock]:
        """Reconcile one ticket (recalculation, tests); the caller holds its lock."""
        results = await self.reconcile_many(session, [(tenant_id, ticket_id)], now)
        return results[0].clocks if results else []

    async def reconcile_many(
        self, session: AsyncSession, tickets: Sequence[tuple[str, str]], now: datetime,
        trace_of: Mapping[tuple[str, str], TraceContext] | None = None,
    ) -> list[Reconciliation]:
        """Publish what each ticket's timeline now implies and reschedule its timer; callers hold the locks."""
        results: list[Reconciliation] = []
        await self._reconcile_until(session, tickets, now, trace_of, float("inf"), results)
        return results

    def _evaluate_inline(self, tenant: str, config: ConfigVersion | None) -> bool:
        """On the loop only what is known to be quick: a tenant whose tickets took under INLINE_SECONDS, with a
        bundle already parsed (parsing a large one takes seconds)."""
        average = self._ticket_seconds.get(tenant)
        parsed = config is None or config in self._bundles
        return average is not None and average < INLINE_SECONDS and parsed

    def _evaluate(self, state: TicketState, config: ConfigVersion | None, now: datetime) -> Reconciliation:
        """In the evaluation thread: parsing a new bundle version is as much CPU as evaluating with it."""
        if config is not None:
            state.config = ConfigRef(config.version, self._bundles.get(config))
        return reconcile_ticket(state, now)

    async def _reconcile_until(
        self, session: AsyncSession, tickets: Sequence[tuple[str, str]], now: datetime,
        trace_of: Mapping[tuple[str, str], TraceContext] | None, deadline: float,
        results: list[Reconciliation] | None = None, share: FairShare | None = None,
    ) -> list[tuple[str, str]]:
        """`reconcile_many` until the monotonic `deadline`; returns the tickets dealt with (the others are left
        untouched). With a `share`, tickets are taken fairly across tenants and their time charged to it.

        A fault in one ticket's evaluation (pure code) is logged and skips only that ticket: its events are kept
        and its next event retries. Database faults fail the transaction, which the caller's delivery retries.
        """
        repository = SqlSlaRepository(session, self._timelines)
        results = [] if results is None else results
        failed: list[tuple[str, str]] = []
        done: list[tuple[str, str]] = []
        loop = asyncio.get_running_loop()
        share = share or FairShare()
        for tenant, (state, config) in share.schedule(
            (state.tenant_id, (state, config)) for state, config in await repository.load_states(tickets)
        ):
            if done and time.monotonic() >= deadline:
                break
            started = time.monotonic()
            ticket = (state.tenant_id, state.ticket_id)
            done.append(ticket)
            try:
                with tracer().start_as_current_span(
                    "reconcile ticket", context=(trace_of or {}).get(ticket),
                    attributes={"slm.tenant": state.tenant_id, "slm.ticket_id": state.ticket_id},
                ):
                    if self._evaluate_inline(tenant, config):
                        result = self._evaluate(state, config, now)
                    else:
                        result = await loop.run_in_executor(self._evaluator, self._evaluate, state, config, now)
                    result.outgoing[:] = traced(result.outgoing)  # the transitions carry this span's trace
                results.append(result)
            except Exception:  # a bug in one ticket's evaluation must not block the others
                log.exception("reconciling %s/%s failed; its events are kept and the next event retries",
                              state.tenant_id, state.ticket_id)
                failed.append(ticket)
            took = time.monotonic() - started
            share.charge(tenant, took)
            average = self._ticket_seconds.get(tenant)
            self._ticket_seconds[tenant] = took if average is None else 0.8 * average + 0.2 * took
            await asyncio.sleep(0)  # the loop runs between two tickets, whichever way they were evaluated
        await self._outbox.add(session, [event for result in results for event in result.outgoing])
        await repository.save_reconciliations(results, now)
        # A failing ticket's timer would come due again at once and spin the timer loop: drop it instead.
        await repository.clear_timers(failed)
        for result in results:
            for transition in result.new_transitions:
                TRANSITIONS_EMITTED.labels(transition).inc()
        return done
