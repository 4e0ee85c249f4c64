"""Where tickets are evaluated does not change what is decided (sla_engine/clocks/evaluation.py, issue 11).

Tickets of the realistic workload (bench/engine_scale/workload.py: business calendars with holidays, pauses,
priority changes, reopens, late events) are reconciled in this process with `reconcile_ticket`, and through
the worker process and the worker thread: the clock rows, the outbox records and every other decision are
equal. The worker is sent a version's bundle text once, and again after it was restarted; a ticket whose
evaluation fails, or whose version is not stored, gives that ticket an error and the others their result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from bench.engine_scale.workload import bundle_yaml, last_event_time, make_ticket
from sla_engine.bundles.cache import BundleCache
from sla_engine.clocks.evaluation import Job, Outcome, ProcessEvaluator, ThreadEvaluator
from sla_engine.clocks.publication import ReconciledTicket, reconciled_ticket
from sla_engine.domain.bundle import parse_bundle
from sla_engine.domain.reconciliation import ConfigRef, TicketState, reconcile_ticket
from sla_engine.domain.timeline import TicketSnapshot
from sla_engine.ports import BundleSource, VersionKey
from slm_shared.outbox import OutgoingEvent

TEXT = bundle_yaml(12)
VERSION: VersionKey = ("acme", 3)
TICKETS = [make_ticket(f"T-{n:03d}", policy=n % 12, events=6 + n % 5, seed=n) for n in range(24)]
NOW = max(last_event_time(ticket) for ticket in TICKETS) + timedelta(hours=2)


class Sources:
    """The repository's `bundle_sources`, recording what is asked."""

    def __init__(self) -> None:
        self.asked: list[list[VersionKey]] = []

    async def __call__(self, versions: Sequence[VersionKey]) -> dict[VersionKey, BundleSource]:
        self.asked.append(list(versions))
        return {version: BundleSource(version[0], version[1], TEXT) for version in versions if version == VERSION}


def states(timelines: Sequence[Sequence[TicketSnapshot]]) -> list[TicketState]:
    return [TicketState(VERSION[0], timeline[0].ticket_id, timeline=list(timeline)) for timeline in timelines]


def jobs(timelines: Sequence[Sequence[TicketSnapshot]], *, compact: bool = True) -> list[Job]:
    return [Job(state, VERSION, compact=compact) for state in states(timelines)]


def in_process(timelines: Sequence[Sequence[TicketSnapshot]]) -> list[ReconciledTicket]:
    config = ConfigRef(VERSION[1], parse_bundle(TEXT))
    results = []
    for state in states(timelines):
        state.config = config
        results.append(reconciled_ticket(reconcile_ticket(state, NOW), keep_clocks=True))
    return results


def decisions(result: ReconciledTicket | None) -> tuple[object, ...]:
    """Everything the handler writes from a reconciliation: rows, outbox records, keys, timer, pin, sequences."""
    assert result is not None
    records = [
        record.serialized() if isinstance(record, OutgoingEvent) else record for record in result.outbox_records()
    ]
    return (
        result.tenant_id,
        result.ticket_id,
        result.clock_rows(),
        records,
        result.published,
        result.retracted,
        result.timer,
        result.pin_version,
        result.first_event_at,
        result.sequences,
    )


def results(outcomes: list[Outcome]) -> list[tuple[object, ...]]:
    assert [outcome.error for outcome in outcomes] == [None] * len(outcomes)
    return [decisions(outcome.result) for outcome in outcomes]


def test_the_worker_process_decides_exactly_what_the_service_process_does() -> None:
    timelines = [ticket.snapshots for ticket in TICKETS]
    expected = [decisions(result) for result in in_process(timelines)]
    assert any(result.outbox_records() for result in in_process(timelines))  # the tickets publish events
    sources = Sources()
    evaluator = ProcessEvaluator()

    async def run() -> None:
        first = await evaluator.evaluate(jobs(timelines[:10]), NOW, sources)
        second = await evaluator.evaluate(jobs(timelines[10:]), NOW, sources)
        assert results(first) + results(second) == expected
        assert sources.asked == [[VERSION]]  # the text crossed once
        assert all(outcome.result is not None and outcome.result.clocks == [] for outcome in first)
        kept = await evaluator.evaluate(jobs(timelines[:3], compact=False), NOW, sources)
        assert [outcome.result.clocks if outcome.result else None for outcome in kept] == [
            result.clocks for result in in_process(timelines[:3])
        ]
        evaluator.close()  # a new worker knows no bundle: it is sent the text again
        again = await evaluator.evaluate(jobs(timelines[:2]), NOW, sources)
        assert results(again) == expected[:2]
        assert sources.asked == [[VERSION], [VERSION]]

    try:
        asyncio.run(run())
    finally:
        evaluator.close()


def test_the_worker_thread_decides_exactly_what_the_service_process_does() -> None:
    timelines = [ticket.snapshots for ticket in TICKETS[:8]]
    cache = BundleCache()
    evaluator = ThreadEvaluator(cache.get, cache.cached)
    try:
        outcomes = asyncio.run(evaluator.evaluate(jobs(timelines), NOW, Sources()))
    finally:
        evaluator.close()
    assert results(outcomes) == [decisions(result) for result in in_process(timelines)]
    assert VERSION in cache


def test_a_ticket_whose_evaluation_fails_leaves_the_others_their_result() -> None:
    good = [ticket.snapshots for ticket in TICKETS[:2]]
    broken = Job(TicketState(VERSION[0], "T-broken", timeline=list(TICKETS[2].snapshots)), VERSION)
    broken.state.emitted = {("not", "a", "key")}  # type: ignore[arg-type]  # a fault inside reconcile_ticket
    unknown = Job(TicketState(VERSION[0], "T-unknown", timeline=list(TICKETS[3].snapshots)), (VERSION[0], 99))
    evaluator = ProcessEvaluator()
    try:
        outcomes = asyncio.run(evaluator.evaluate([jobs(good)[0], broken, unknown, jobs(good)[1]], NOW, Sources()))
    finally:
        evaluator.close()
    assert outcomes[1].result is None
    assert outcomes[1].error is not None
    assert "IndexError" in outcomes[1].error
    assert outcomes[2].result is None
    assert outcomes[2].error == "configuration version ('acme', 99) not found"
    assert results([outcomes[0], outcomes[3]]) == [decisions(result) for result in in_process(good)]
