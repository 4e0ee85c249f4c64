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
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter, Histogram
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sla_engine import tables
from sla_engine.config import BundleCache
from sla_engine.domain.bundle import Bundle
from sla_engine.domain.clocks import Clock
from sla_engine.domain.timeline import TicketSnapshot
from sla_engine.fair_share import FairShare
from sla_engine.reconciliation import ConfigRef, Reconciliation, TicketState, reconcile_ticket
from sla_engine.repository import EVENTS_DUE, BundleSource, DueTimer, SqlSlaRepository, VersionKey
from sla_engine.timeline_cache import TimelineCache
from slm_shared.consumer import ParsedBatch, parse_batch
from slm_shared.events import TICKET_EVENT, CloudEvent, TicketSnapshotData
from slm_shared.inbox import Inbox
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


def snapshot_of(event: CloudEvent) -> TicketSnapshot:
    data = TicketSnapshotData.model_validate(event.data)
    return TicketSnapshot(
        event_id=event.id, time=event.time, arrival=0, ticket_id=data.ticket_id, action=data.action,
        kind=data.kind, status=data.status, priority=data.priority, service=data.service,
        customer=data.customer, assignment_group=data.assignment_group, assignee=data.assignee,
        attributes=data.attributes,
    )


def newest_traceparents(batch: ParsedBatch, events: Sequence[CloudEvent]) -> dict[tuple[str, str], str]:
    """The `traceparent` header of each ticket's last event in the batch (events without one are skipped)."""
    position_of = {event.dedup_key: position for event, position in zip(batch.events, batch.positions, strict=True)}
    found: dict[tuple[str, str], str] = {}
    for event in events:
        for name, value in batch.headers[position_of[event.dedup_key]] or ():
            if name.lower() == "traceparent":
                found[(event.tenantid, str(event.data["ticket_id"]))] = value.decode("latin-1")
    return found


class ClockKeeper:
    """Keeps every ticket's published clock transitions equal to what its timeline implies."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], bundles: BundleCache, now: Now = utc_now) -> None:
        self._sessions = sessions
        self._bundles = bundles
        self._now = now
        self._outbox = Outbox(tables.outbox)
        self._inbox = Inbox(tables.inbox, "sla-engine.tickets")
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

        One transaction for the batch: the inbox drops redelivered ids, the new snapshots are stored, and every
        touched ticket of a configured tenant is made due in `timers` under its lock (taken in a stable order,
        so two consumers never deadlock; the lock keeps a reconciliation that read the timeline before these
        snapshots from overwriting the due mark). The reconcile loop evaluates them, fairly across tenants.
        Tickets of tenants with no configuration are stored only: a later apply with recalculation picks them
        up. Idempotent: a redelivered batch changes nothing. Returns one outcome per record.
        """
        batch = parse_batch(records, {TICKET_EVENT})
        if not batch.events:
            return batch.outcomes
        now = self._now()
        async with self._sessions() as session, session.begin():
            repository = SqlSlaRepository(session)
            fresh = await self._inbox.first_deliveries(session, batch.events)
            await repository.add_snapshots([(event.tenantid, event.source, snapshot_of(event)) for event in fresh])
            touched = sorted({(event.tenantid, str(event.data["ticket_id"])) for event in fresh})
            configured = await repository.configured_tenants({tenant for tenant, _ in touched})
            touched = [(tenant, ticket) for tenant, ticket in touched if tenant in configured]
            await repository.lock_tickets(touched)
            # A ticket's reconciliation continues the trace of its newest event in the batch.
            traceparents = newest_traceparents(batch, fresh)
            await repository.mark_due([DueTimer(tenant, ticket, now, EVENTS_DUE, traceparents.get((tenant, ticket)))
                                       for tenant, ticket in touched])
        if touched:
            self.tickets_due.set()
        return batch.mark_duplicates(fresh)

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

    def _evaluate_inline(self, tenant: str, bundle: Bundle | None) -> bool:
        """On the loop only what is known to be quick: a tenant whose tickets took under INLINE_SECONDS, with its
        bundle at hand (parsing a large one takes seconds)."""
        average = self._ticket_seconds.get(tenant)
        return average is not None and average < INLINE_SECONDS and bundle is not None

    def _evaluate(self, state: TicketState, version: VersionKey | None, bundles: _RoundBundles,
                  now: datetime) -> Reconciliation:
        """In the evaluation thread when the bundle is not parsed yet: parsing is as much CPU as evaluating."""
        if version is not None:
            state.config = ConfigRef(version[1], bundles.bundle(version))
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
        loaded = await repository.load_states(tickets)
        bundles = _RoundBundles(self._bundles)
        bundles.sources.update(await repository.bundle_sources(bundles.hold(version for _, version in loaded)))
        for tenant, (state, config) in share.schedule((state.tenant_id, (state, config)) for state, config in loaded):
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
                    if self._evaluate_inline(tenant, bundles.held(config)):
                        result = self._evaluate(state, config, bundles, now)
                    else:
                        result = await loop.run_in_executor(self._evaluator, self._evaluate, state, config, bundles,
                                                            now)
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


class _RoundBundles:
    """The parsed bundles one round evaluates with, held for the whole round (the process-wide `BundleCache` may
    drop entries meanwhile); versions not parsed yet are parsed from `sources` at first use, once."""

    def __init__(self, cache: BundleCache) -> None:
        self._cache = cache
        self._held: dict[VersionKey, Bundle] = {}
        self.sources: dict[VersionKey, BundleSource] = {}

    def hold(self, versions: Iterable[VersionKey | None]) -> list[VersionKey]:
        """Hold the cached ones; returns the versions whose source text is needed."""
        missing = []
        for version in {version for version in versions if version is not None}:
            bundle = self._cache.cached(version)
            if bundle is None:
                missing.append(version)
            else:
                self._held[version] = bundle
        return sorted(missing)

    def held(self, version: VersionKey | None) -> Bundle | None:
        return None if version is None else self._held.get(version)

    def bundle(self, version: VersionKey) -> Bundle:
        bundle = self._held.get(version)
        if bundle is None:
            bundle = self._held[version] = self._cache.get(self.sources[version])
        return bundle
