"""Durable timers under load: 1,000,000 pending clocks in PostgreSQL while 200 become due each second.

Loads a scratch sla-engine database with N running clocks (timeline, pin, published `started`, timer),
the first RATE x SECONDS of them due one after another from the start, then runs the engine's own timer loop
(`TimerLoop` around `ClockKeeper`) and reads the `breached` events it wrote to the outbox: fire rate,
lateness (breach event visible in the outbox - due instant) p50/p99/max, and the process's memory.
Baseline in the same run:
an in-memory asyncio scheduler firing the same instants (`asyncio.sleep` until due), the floor any timer
service on this machine can reach.

Run: `make bench`, or `uv run python -m bench.timers.bench_timers [pending] [seconds]` with the stack's env.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from scripts.localstack import REPO, discover
from sla_engine.bundles.cache import BundleCache
from sla_engine.bundles.lifecycle import ConfigService
from sla_engine.clocks.handlers import ClockKeeper
from sla_engine.clocks.timers import TimerLoop
from sla_engine.unit_of_work import engine_units
from slm_shared.db import create_engine, session_factory
from slm_shared.outbox import asyncpg_dsn

RATE = 200  # timers becoming due per second
BUNDLE = """
policies:
  - id: p1
    name: P1 resolution
    agreement: SLA
    match: {kind: incident}
    metrics:
      - metric: resolution
        calendar: 24x7
        targets: {P1: 1h}
        stop: {statuses: [resolved]}
"""


def resident_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def load_pending_clocks(dsn: str, tenant: str, pending: int, due_now: int, start: datetime) -> None:
    """COPY the rows a running clock leaves behind: snapshot, pin, published `started`, timer."""
    connection = await asyncpg.connect(dsn)
    try:
        snapshot = json.dumps(
            {
                "action": "created",
                "kind": "incident",
                "status": "new",
                "priority": "P1",
                "service": "email",
                "customer": "acme",
                "attributes": {},
            }
        )
        for chunk in range(0, pending, 100_000):  # chunks keep this process's memory flat
            events, pins, started, timers = [], [], [], []
            for n in range(chunk, min(pending, chunk + 100_000)):
                # Clock instants are whole seconds, so the RATE timers of each second fall due together.
                due = start + timedelta(seconds=n // RATE) if n < due_now else start + timedelta(days=1, seconds=n)
                created = due - timedelta(hours=1)
                ticket = f"T-{n}"
                events.append((tenant, ticket, "bench://timers", f"e-{n}", created, snapshot))
                pins.append((tenant, ticket, 1, created))
                started.append((tenant, ticket, "p1", "resolution", 1, "started", created, 0, created))
                timers.append((tenant, ticket, due, "breached"))
            await connection.copy_records_to_table(
                "ticket_events",
                records=events,
                columns=["tenant_id", "ticket_id", "source", "event_id", "event_time", "snapshot"],
            )
            await connection.copy_records_to_table(
                "ticket_versions", records=pins, columns=["tenant_id", "ticket_id", "config_version", "first_event_at"]
            )
            await connection.copy_records_to_table(
                "emitted_transitions",
                records=started,
                columns=[
                    "tenant_id",
                    "ticket_id",
                    "policy_id",
                    "metric",
                    "cycle",
                    "transition",
                    "at",
                    "threshold",
                    "emitted_at",
                ],
            )
            await connection.copy_records_to_table(
                "timers", records=timers, columns=["tenant_id", "ticket_id", "due_at", "transition"]
            )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


async def watch_fired(dsn: str, stop: asyncio.Event) -> list[float]:
    """Lateness of each `breached` event: when its outbox row became visible (polled every 10 ms) - due.

    The timer loop is the only writer here, so ids become visible in order and `id > last` misses nothing.
    """
    connection = await asyncpg.connect(dsn)
    lateness: list[float] = []
    last = 0
    try:
        while not stop.is_set():
            rows = await connection.fetch("SELECT id, payload FROM outbox WHERE id > $1 ORDER BY id", last)
            seen = datetime.now(UTC)
            for row in rows:
                last = row["id"]
                event = json.loads(row["payload"])
                if event["data"]["transition"] == "breached":
                    lateness.append((seen - datetime.fromisoformat(event["time"])).total_seconds())
            await asyncio.sleep(0.01)
    finally:
        await connection.close()
    return lateness


async def asyncio_baseline(count: int) -> list[float]:
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.5
    lateness: list[float] = []

    async def fire(due: float) -> None:
        await asyncio.sleep(max(0.0, due - loop.time()))
        lateness.append(loop.time() - due)

    await asyncio.gather(*(fire(start + n // RATE) for n in range(count)))
    return lateness


async def run(pending: int, seconds: int) -> None:
    stack = discover()
    if stack is None:
        raise SystemExit("no stack found: run `make up` first")
    base = stack.database_urls["sla-engine"].rsplit("/", 1)[0]
    name = f"bench_timers_{uuid.uuid4().hex[:6]}"
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
        engine = create_engine(url)
        sessions = session_factory(engine)
        bundles = BundleCache()
        keeper = ClockKeeper(engine_units(sessions), bundles)
        tenant = "bench"
        await ConfigService(engine_units(sessions), bundles, keeper).apply(
            tenant, BUNDLE, "yaml", "none", datetime.now(UTC)
        )
        due_now = RATE * seconds
        started = time.perf_counter()
        first_due = (datetime.now(UTC) + timedelta(seconds=60 + pending / 40_000)).replace(microsecond=0)
        await load_pending_clocks(asyncpg_dsn(url), tenant, pending, due_now, first_due)
        loaded_in = time.perf_counter() - started
        wait = (first_due - datetime.now(UTC)).total_seconds()
        if wait < 0:
            raise SystemExit("loading took longer than planned; lower `pending`")
        await asyncio.sleep(wait)
        loop = TimerLoop(
            keeper, engine_units(sessions), lambda: datetime.now(UTC), batch_size=200, max_sleep_seconds=0.5
        )
        rss_before = resident_mib()
        stop_watching = asyncio.Event()
        watching = asyncio.create_task(watch_fired(asyncpg_dsn(url), stop_watching))
        running = asyncio.create_task(loop.run())
        await asyncio.sleep(seconds + 3)
        rss_during = resident_mib()
        await loop.stop()
        await running
        stop_watching.set()
        lateness = await watching
        await engine.dispose()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
    baseline = await asyncio_baseline(due_now)
    print(f"pending clocks                {pending:>10}   (loaded in {loaded_in:.1f} s)")
    print(f"due during the run            {due_now:>10}   ({RATE}/s for {seconds} s)")
    print(f"fired                         {len(lateness):>10}   ({len(lateness) / seconds:.0f}/s)")
    if lateness:
        print(
            f"lateness p50 / p99 / max       {percentile(lateness, 0.5):8.3f} / {percentile(lateness, 0.99):.3f}"
            f" / {max(lateness):.3f} s   (target p99 <= 1 s)"
        )
    print(f"baseline asyncio.sleep p50/p99 {statistics.median(baseline):8.3f} / {percentile(baseline, 0.99):.3f} s")
    print(
        f"resident memory               {rss_during:10.0f} MiB at the end of the run ({rss_before:.0f} MiB before"
        " the timer loop started; the loop runs in this process)"
    )


def main() -> int:
    pending = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    asyncio.run(run(pending, seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
