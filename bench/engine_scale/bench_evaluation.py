"""How the clock engine's cost grows with the bundle: pure, no I/O.

For bundles of 1, 10, 100 and 1,000 policies (bench/engine_scale/workload.py: 2-3 metrics each, three
calendars with holidays and lunch breaks), the same 8-snapshot tickets (late arrivals, pauses, priority changes,
reopens) are evaluated by `evaluate_ticket` and reconciled by `reconcile_ticket` from nothing published (every
transition is new, so every transition's payload is built). Each ticket matches the same few policies in every
bundle, so an engine whose cost follows the ticket, not the bundle, keeps the 1-policy rate.

Prints evaluations/s and reconciliations/s per bundle size and the ratio to the 1-policy bundle. The machine is
shared, so the cases are measured in interleaved rounds and each keeps its best round.
Run: `make bench`, or `uv run python -m bench.engine_scale.bench_evaluation [seconds per case and round]`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import timedelta

from bench.engine_scale.workload import Ticket, last_event_time, make_bundle, make_ticket
from sla_engine.clocks.publication import reconciled_ticket
from sla_engine.domain.bundle import Bundle
from sla_engine.domain.clocks import evaluate_ticket
from sla_engine.domain.reconciliation import ConfigRef, TicketState, reconcile_ticket

BUNDLE_SIZES = (1, 10, 100, 1000)
TICKETS = 16
SNAPSHOTS = 8
ROUNDS = 3


def tickets() -> list[Ticket]:
    """8-snapshot tickets of the first policy's customers, which every bundle holds."""
    return [make_ticket(f"T-{n:03d}", policy=0, events=SNAPSHOTS, seed=n) for n in range(TICKETS)]


def rate(work: Callable[[], object], seconds: float) -> float:
    """Calls per second of `work`, over at least `seconds` (and at least 3 calls)."""
    work()  # warm caches (calendars' day tables) before timing
    calls, started = 0, time.perf_counter()
    while True:
        work()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and calls >= 3:
            return calls / elapsed


def evaluate_all(bundle: Bundle, sample: list[Ticket]) -> Callable[[], object]:
    def work() -> object:
        for ticket in sample:
            evaluate_ticket(ticket.snapshots, bundle, policy_version=1, at=last_event_time(ticket) + timedelta(hours=1))
        return None

    return work


def reconcile_all(bundle: Bundle, sample: list[Ticket]) -> Callable[[], object]:
    config = ConfigRef(version=1, bundle=bundle)

    def work() -> object:
        for ticket in sample:
            state = TicketState("bench", ticket.ticket_id, timeline=list(ticket.snapshots), config=config)
            # With its events and rows, as the worker process writes them (clocks/evaluation.py).
            reconciled_ticket(reconcile_ticket(state, last_event_time(ticket) + timedelta(hours=1)))
        return None

    return work


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    sample = tickets()
    transitions = sum(
        len(c.transitions)
        for t in sample
        for c in evaluate_ticket(
            t.snapshots, make_bundle(1), policy_version=1, at=last_event_time(t) + timedelta(hours=1)
        )
    )
    print(
        f"{len(sample)} tickets of {SNAPSHOTS} snapshots, {transitions} transitions in all; "
        f"best of {ROUNDS} rounds of {seconds:.1f}s per case"
    )
    bundles = {size: make_bundle(size) for size in BUNDLE_SIZES}
    best: dict[tuple[str, int], float] = {}
    for _ in range(ROUNDS):
        for size, bundle in bundles.items():
            cases = (("evaluate", evaluate_all(bundle, sample)), ("reconcile", reconcile_all(bundle, sample)))
            for name, work in cases:
                measured = rate(work, seconds) * len(sample)
                best[(name, size)] = max(best.get((name, size), 0.0), measured)
    print(f"{'policies':>8} {'evaluations/s':>14} {'vs 1':>6} {'reconciliations/s':>18} {'vs 1':>6}")
    for size in BUNDLE_SIZES:
        evaluations, reconciliations = best[("evaluate", size)], best[("reconcile", size)]
        print(
            f"{size:>8} {evaluations:>14.0f} {evaluations / best[('evaluate', 1)]:>6.2f} "
            f"{reconciliations:>18.0f} {reconciliations / best[('reconcile', 1)]:>6.2f}"
        )


if __name__ == "__main__":
    main()
