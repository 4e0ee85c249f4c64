"""What loading tickets' stored timelines costs: `SqlClockStateRepository.load_states` on PostgreSQL.

Stores TICKETS workload tickets (bench/engine_scale/workload.py, 6-10 events each) in a scratch sla-engine
database, then loads them in batches of about BATCH tickets (sizes vary) the way the reconcile loop does, in
fresh transactions, ROUNDS times over: the first round reads every timeline for the first time, later rounds read
timelines already read once (the timer loop and every later event of a ticket). Once without a cache (every row
fetched and decoded each time) and once with the `TimelineCache` the ClockKeeper keeps, the two modes taking
turns round by round. Prints milliseconds per batch and per ticket for each round and mode.

Run: `make bench`, or `uv run python -m bench.engine_scale.bench_timeline_loading [tickets]` with the stack's env.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
import uuid

import asyncpg

from bench.engine_scale.workload import make_tickets
from scripts.localstack import REPO, discover
from sla_engine.clocks.states import SqlClockStateRepository
from sla_engine.clocks.tickets import SqlTicketRepository
from sla_engine.clocks.timeline_cache import TimelineCache
from slm_shared.db import create_engine, session_factory
from slm_shared.outbox import asyncpg_dsn

BATCH = 100
ROUNDS = 4


def batch_sizes(total: int) -> list[int]:
    """Batches of BATCH tickets on average but of varying size, as the reconcile loop's rounds are (how many
    tickets are due, and how many the budget took, changes every round)."""
    rng = random.Random(7)
    sizes: list[int] = []
    while (left := total - sum(sizes)) > 0:
        sizes.append(min(left, rng.randint(BATCH // 2, BATCH * 3 // 2)))
    return sizes


async def run(count: int) -> None:
    stack = discover()
    if stack is None:
        raise SystemExit("no stack found: run `make up` first")
    base = stack.database_urls["sla-engine"].rsplit("/", 1)[0]
    name = f"bench_timelines_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(asyncpg_dsn(f"{base}/postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{base}/{name}"
    try:
        migrate = await asyncio.create_subprocess_exec(
            str(REPO / ".venv" / "bin" / "alembic"),
            "-c",
            str(REPO / "services" / "sla-engine" / "alembic.ini"),
            "upgrade",
            "head",
            env={**os.environ, "SLA_ENGINE_DATABASE_URL": url},
        )
        if await migrate.wait() != 0:
            raise SystemExit("migrating the scratch database failed")
        engine = create_engine(url, pool_size=2)
        sessions = session_factory(engine)
        tickets = make_tickets(count, policies=100)
        async with sessions() as session, session.begin():
            await SqlTicketRepository(session).add_snapshots(
                [("bench", "bench://engine-scale", snapshot) for ticket in tickets for snapshot in ticket.snapshots]
            )
        pairs = [("bench", ticket.ticket_id) for ticket in tickets]
        events = sum(len(ticket.snapshots) for ticket in tickets)
        print(f"{count} tickets, {events} events, batches of about {BATCH} tickets")
        cache = TimelineCache(max_tickets=count)
        sizes = batch_sizes(len(pairs))
        batches = len(sizes)
        for round_number in range(1, ROUNDS + 1):
            for mode, timelines in (("no cache", None), ("cache", cache)):
                started = time.perf_counter()
                loaded = 0
                first = 0
                for size in sizes:
                    async with sessions() as session, session.begin():
                        repository = SqlClockStateRepository(session, timelines)
                        states = await repository.load_states(pairs[first : first + size])
                        loaded += sum(len(state.timeline) for state, _ in states)
                    first += size
                elapsed = time.perf_counter() - started
                assert loaded == events, (loaded, events)
                print(
                    f"round {round_number} {mode:>8}: {1000 * elapsed / batches:7.1f} ms per batch, "
                    f"{1e6 * elapsed / len(pairs):7.0f} us per ticket"
                )
        await engine.dispose()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    asyncio.run(run(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))


if __name__ == "__main__":
    main()
