"""The sla-engine's handlers: ticket snapshots and due timers in, clock transitions out through the outbox.

Consumption and evaluation are decoupled (docs/architecture.md, "A live event loop"): the ticket consumer only
stores snapshots and makes each touched ticket due now in the `timers` table, a cheap transaction, so the
partition drains and heartbeats flow whatever the bundle costs. The reconcile loop (timers.py) then takes due
tickets in rounds, round-robin across tenants, and reconciles them.

Every reconciliation goes through `reconcile_many`: load the tickets' stored state in bulk, let the pure
`reconcile_ticket` decide what the timeline now implies (new transitions; `recalculated` for published ones a
late event proved wrong; the next timer), in the evaluation worker process (evaluation.py), and write it back
in bulk with the outbox rows. Because the result
depends only on the timeline, out-of-order, late and duplicate deliveries give exactly the in-order result.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram

from sla_engine.bundles.cache import BUNDLE_PARSES, BundleCache
from sla_engine.clocks.evaluation import Evaluator, Job, ProcessEvaluator, ThreadEvaluator
from sla_engine.clocks.fair_share import FairShare
from sla_engine.ports import EVENTS_DUE, EngineUnit, EngineUnits, StoredSnapshot
from slm_shared.consumer import parse_batch
from slm_shared.events import TICKET_EVENT, TicketSnapshotData
from slm_shared.outbox import OutgoingEvent, OutgoingRecord, traced
from slm_shared.time_source import Now, utc_now
from slm_shared.tracing import TraceContext, context_from_headers, tracer

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from datetime import datetime

    from aiokafka.structs import ConsumerRecord

    from sla_engine.clocks.publication import ReconciledTicket
    from sla_engine.domain.clocks import Clock

log = logging.getLogger(__name__)

TRANSITIONS_EMITTED = Counter("slm_clock_transitions_total", "Clock transitions published", ["transition"])
TIMER_LATENESS = Histogram(
    "slm_timer_lateness_seconds",
    "Fired minus due for durable timers",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
RECONCILE_DELAY = Histogram(
    "slm_reconcile_delay_seconds",
    "Reconciled minus made due, for tickets made due by new snapshots",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)

# Tickets are handed to the evaluator in chunks of about this much evaluation time (by each tenant's recent
# average; a tenant not seen yet counts UNKNOWN_TICKET_SECONDS a ticket), at most CHUNK_TICKETS: one handover
# (pickling, a process switch) per chunk, and a round stops soon after its time budget.
CHUNK_SECONDS = 0.05
CHUNK_TICKETS = 64
UNKNOWN_TICKET_SECONDS = 0.01
# The inbox's consumer name of the ticket snapshots (written by the store path's own statement).
TICKETS_INBOX = "sla-engine.tickets"


def stored_json(data: TicketSnapshotData) -> str:
    """The JSON a snapshot is stored as in `ticket_events.snapshot` (what `_snapshot_from_row` reads back)."""
    return json.dumps(
        {
            "action": data.action,
            "kind": data.kind,
            "status": data.status,
            "priority": data.priority,
            "service": data.service,
            "customer": data.customer,
            "assignment_group": data.assignment_group,
            "assignee": data.assignee,
            "attributes": data.attributes,
        }
    )


class ClockKeeper:
    """Keeps every ticket's published clock transitions equal to what its timeline implies."""

    def __init__(self, units: EngineUnits, bundles: BundleCache, now: Now = utc_now, *, processes: int = 0) -> None:
        self._units = units
        self._bundles = bundles
        self._now = now
        # Set when the consumer has made tickets due, so the reconcile loop wakes at once.
        self.tickets_due = asyncio.Event()
        # Evaluation is pure CPU: in a worker process by default (evaluation.py says why), or in a thread.
        self._evaluator: Evaluator = (
            ProcessEvaluator(on_parse=BUNDLE_PARSES.inc) if processes else ThreadEvaluator(bundles.get, bundles.cached)
        )
        self._ticket_seconds: dict[str, float] = {}  # per tenant, a moving average of one ticket's evaluation
        self._share = FairShare()  # evaluation time per tenant, shared fairly by the reconcile loop

    async def start(self) -> None:
        """Start the evaluation worker (the reconcile loop does, while the consumers join their groups)."""
        await self._evaluator.start()

    def close(self) -> None:
        """Stop the evaluation worker (the service is stopping)."""
        self._evaluator.close()

    async def on_ticket_records(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> list[str]:
        """Business rule: each snapshot joins its ticket's timeline, and each touched ticket becomes due now.

        One transaction, one statement for the batch (`SqlTicketRepository.store_snapshots`): the inbox drops
        redelivered ids, the new snapshots are stored, and every touched ticket of a configured tenant is made
        due in `timers` with a new mark, without waiting for a reconciliation of it in flight: one that read
        the timeline before these snapshots finds the mark changed and leaves the ticket due. Nothing
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
                unique[event.dedup_key] = StoredSnapshot(
                    event.tenantid,
                    event.source,
                    event.id,
                    data.ticket_id,
                    event.time,
                    stored_json(data),
                    batch.traceparent(index),
                )
        async with self._units() as uow:
            fresh, due = await uow.tickets.store_snapshots(TICKETS_INBOX, list(unique.values()), self._now())
            await uow.commit()
        if due:
            self.tickets_due.set()
        return batch.mark_duplicates([event for event in batch.events if event.dedup_key in fresh])

    async def reconcile_due(
        self, limit: int, per_tenant: int, budget_seconds: float, part: tuple[int, int] = (0, 1)
    ) -> int:
        """One round of the reconcile loop: due tickets (new snapshots, warning and breach timers) reconciled
        in one transaction; returns how many.

        At most `limit` tickets, `per_tenant` of each tenant (earliest due first; of a tenant whose tickets are
        expensive, only as many as the budget evaluates, so the round holds no more); among them the next ticket
        evaluated is always of the tenant that used the least evaluation time (`FairShare`), and evaluation
        stops once `budget_seconds` are spent: the tickets not reached stay due for the next round, so a round
        (and the ticket locks it holds) stays short however expensive the bundle, and one tenant's backlog or
        bundle never holds another tenant's clocks back. A ticket whose lock another worker holds is skipped:
        that worker reconciles it and reschedules. `part` = (index, count): the slice of the due tickets this
        round takes (`SqlTimerRepository.due_tickets`), one per round in flight. The consumer is never held up
        by a round: a ticket it makes due meanwhile stays due for the next (the timer's mark, clocks/due_queue.py).
        """
        now = self._now()
        deadline = time.monotonic() + budget_seconds
        async with self._units() as uow:
            # A tenant takes no more tickets than the round's budget evaluates, by its recent CPU per ticket.
            caps = {
                tenant: cap
                for tenant, seconds in self._ticket_seconds.items()
                if seconds > 0 and (cap := max(1, math.ceil(budget_seconds / seconds))) < per_tenant
            }
            due = {
                (t.tenant_id, t.ticket_id): t for t in await uow.timers.due_tickets(now, limit, per_tenant, caps, part)
            }
            trace_of = {
                pair: context_from_headers({"traceparent": t.traceparent}) for pair, t in due.items() if t.traceparent
            }
            done = await self._reconcile_until(uow, list(due), now, trace_of, deadline, share=self._share)
            await uow.commit()
        reconciled_at = self._now()
        for pair in done:
            lateness = max(0.0, (reconciled_at - due[pair].due_at).total_seconds())
            (RECONCILE_DELAY if due[pair].reason == EVENTS_DUE else TIMER_LATENESS).observe(lateness)
        return len(done)

    async def reconcile(self, uow: EngineUnit, tenant_id: str, ticket_id: str, now: datetime) -> list[Clock]:
        """Reconcile one ticket in the caller's unit of work (recalculation, tests); the caller holds its lock."""
        results = await self.reconcile_many(uow, [(tenant_id, ticket_id)], now)
        return results[0].clocks if results else []

    async def reconcile_many(
        self,
        uow: EngineUnit,
        tickets: Sequence[tuple[str, str]],
        now: datetime,
        trace_of: Mapping[tuple[str, str], TraceContext] | None = None,
    ) -> list[ReconciledTicket]:
        """Publish what each ticket's timeline now implies and reschedule its timer; callers hold the locks."""
        results: list[ReconciledTicket] = []
        await self._reconcile_until(uow, tickets, now, trace_of, float("inf"), results, keep_clocks=True)
        return results

    def _chunk(self, queue: Iterator[tuple[str, Job]], share: FairShare) -> list[tuple[str, Job, float]]:
        """The next tickets in fair order, about CHUNK_SECONDS of evaluation by each tenant's recent average;
        each is charged its expected time as it is taken (corrected when its outcome comes back), so the next
        pick already counts it."""
        chunk: list[tuple[str, Job, float]] = []
        expected_total = 0.0
        for tenant, job in queue:
            expected = self._ticket_seconds.get(tenant, UNKNOWN_TICKET_SECONDS)
            share.charge(tenant, expected)
            chunk.append((tenant, job, expected))
            expected_total += expected
            if expected_total >= CHUNK_SECONDS or len(chunk) >= CHUNK_TICKETS:
                break
        return chunk

    async def _reconcile_until(
        self,
        uow: EngineUnit,
        tickets: Sequence[tuple[str, str]],
        now: datetime,
        trace_of: Mapping[tuple[str, str], TraceContext] | None,
        deadline: float,
        results: list[ReconciledTicket] | None = None,
        share: FairShare | None = None,
        *,
        keep_clocks: bool = False,
    ) -> list[tuple[str, str]]:
        """`reconcile_many` until the monotonic `deadline`; returns the tickets dealt with (the others are left
        untouched). With a `share`, tickets are taken fairly across tenants and their time charged to it. The
        results keep their clocks only with `keep_clocks` (the loop's need only the rows to save).

        Tickets go to the evaluator in chunks; the loop runs other work (the other round in flight, consumers,
        HTTP) while a chunk is evaluated. A fault in one ticket's evaluation (pure code) is logged and skips only
        that ticket: its events are kept and its next event retries. Database faults, and a worker process that
        died, fail the transaction, which the caller's delivery or the next round retries.
        """
        results = [] if results is None else results
        failed: list[tuple[str, str]] = []
        done: list[tuple[str, str]] = []
        outbox: list[OutgoingEvent | OutgoingRecord] = []
        share = share or FairShare()
        # The timer marks first: a snapshot stored after this read changes the mark, so the save leaves the
        # ticket due; one stored before it is in the timeline read next.
        await uow.timers.read_marks(tickets)
        loaded = await uow.states.load_states(tickets)
        queue = iter(
            share.schedule((state.tenant_id, Job(state, version, compact=not keep_clocks)) for state, version in loaded)
        )
        while not done or time.monotonic() < deadline:
            chunk = self._chunk(queue, share)
            if not chunk:
                break
            outcomes = await self._evaluator.evaluate([job for _, job, _ in chunk], now, uow.bundles.bundle_sources)
            for (tenant, job, expected), outcome in zip(chunk, outcomes, strict=True):
                ticket = (job.state.tenant_id, job.state.ticket_id)
                done.append(ticket)
                share.charge(tenant, outcome.seconds - expected)
                average = self._ticket_seconds.get(tenant)
                self._ticket_seconds[tenant] = (
                    outcome.seconds if average is None else (0.8 * average + 0.2 * outcome.seconds)
                )
                if outcome.result is None:  # a bug in one ticket's evaluation must not block the others
                    log.error(
                        "reconciling %s/%s failed; its events are kept and the next event retries\n%s",
                        *ticket,
                        outcome.error,
                    )
                    failed.append(ticket)
                    continue
                with tracer().start_as_current_span(
                    "reconcile ticket",
                    context=(trace_of or {}).get(ticket),
                    attributes={
                        "slm.tenant": ticket[0],
                        "slm.ticket_id": ticket[1],
                        "slm.evaluation_seconds": outcome.seconds,
                    },
                ):
                    outbox.extend(traced(outcome.result.outbox_records()))  # they carry this span's trace
                results.append(outcome.result)
        await uow.outbox.add(outbox)
        await uow.states.save_reconciliations(results, now)
        # A failing ticket's timer would come due again at once and spin the timer loop: drop it instead.
        await uow.timers.reschedule(
            [
                *((r.tenant_id, r.ticket_id, r.timer) for r in results),
                *((tenant, ticket, None) for tenant, ticket in failed),
            ]
        )
        for result in results:
            for transition in result.new_transitions:
                TRANSITIONS_EMITTED.labels(transition).inc()
        return done
