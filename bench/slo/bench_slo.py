"""Service SLOs: signals/s into per-minute rollups, and evaluation time for 1,000 SLOs over 90 days of minutes.

1. Ingestion (needs the stack: `set -a; . .stack/env; set +a`): measurement windows and availability changes
   go through `SloKeeper.on_signal_records` against the real sla-engine database in batches of 500, one
   transaction per batch (inbox, rollup upserts, availability minutes, SLO evaluation, outbox). Baseline, in
   the same run: the same batches through the inbox alone, the least any consumer transaction does.
2. Evaluation (pure): 1,000 SLOs, each over 90 days of per-minute counts (129,600 minutes), with `evaluate`
   and the burn-rate alerts, from the integer columns the repository reads (`ratio_series`). Baseline: summing
   good and total (`Decimal`) over the same minutes in a plain Python loop.

Run: `uv run python -m bench.slo.bench_slo [slos] [signals]` (defaults 1000 and 20000).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord

from sla_engine import tables
from sla_engine.bundles.cache import BundleCache
from sla_engine.bundles.repository import SqlBundleRepository
from sla_engine.domain.bundle import dump_bundle, parse_bundle
from sla_engine.domain.bundle.slos import slo_definition
from sla_engine.domain.slo.alerts import alert_transitions
from sla_engine.domain.slo.evaluation import evaluate
from sla_engine.domain.slo.rollups import RatioMinute
from sla_engine.domain.slo.series import MinuteSeries, ratio_counts
from sla_engine.slos.handlers import SloKeeper
from sla_engine.slos.rollups import SqlRollupRepository
from sla_engine.slos.series import SqlSeriesRepository
from sla_engine.unit_of_work import engine_units
from slm_shared import topics
from slm_shared.db import create_engine, session_factory
from slm_shared.events import parse_cloudevent
from slm_shared.inbox import Inbox

SERVICES = 10
BATCH = 500
BUNDLE = "slos:\n" + "".join(
    f"  - {{id: api-{n}, service: api-{n}, sli: {{type: ratio, sli: requests}}, objective: 99.9, "
    f"window: {{rolling: 28d}}}}\n  - {{id: web-{n}, service: web-{n}, sli: {{type: availability}}, "
    f"objective: 99.9, window: {{calendar: month}}}}\n"
    for n in range(SERVICES)
)


def signal_records(tenant: str, count: int, end: datetime) -> list[ConsumerRecord[bytes, bytes]]:
    records = []
    for index in range(count):
        at = end - timedelta(seconds=count - index)  # a signal a second, the newest now
        service = index % SERVICES
        if index % 10 == 0:  # one in ten is an availability change, the rest good/total windows
            data: dict[str, object] = {
                "service": f"web-{service}",
                "component": "lb",
                "state": "down" if index % 20 == 0 else "up",
            }
            kind = "itsm.availability.v1"
        else:
            data = {
                "service": f"api-{service}",
                "sli": "requests",
                "window_start": (at - timedelta(minutes=1)).isoformat(),
                "window_end": at.isoformat(),
                "good": 995 + index % 5,
                "total": 1_000,
            }
            kind = "itsm.measurement.v1"
        event = {
            "specversion": "1.0",
            "id": f"{tenant}-{index}",
            "source": "probe://bench",
            "type": kind,
            "time": at.isoformat(),
            "tenantid": tenant,
            "data": data,
        }
        value = json.dumps(event).encode()
        records.append(ConsumerRecord(topics.SIGNALS, 0, index, 0, 0, None, value, None, 0, len(value), []))
    return records


async def ingestion(count: int) -> tuple[float, float]:
    url = os.environ.get("SLA_ENGINE_DATABASE_URL")
    if not url:
        raise SystemExit("SLA_ENGINE_DATABASE_URL is not set: run `set -a; . .stack/env; set +a` first")
    engine = create_engine(url, pool_size=2)
    sessions = session_factory(engine)
    tenant = f"bench-slo-{uuid.uuid4().hex[:8]}"
    baseline_tenant = f"{tenant}-inbox"
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    async with sessions() as session, session.begin():
        await SqlBundleRepository(session).add_config(tenant, dump_bundle(parse_bundle(BUNDLE)), BUNDLE)
    try:
        inbox = Inbox(tables.inbox, "bench.slo.baseline")
        baseline_records = signal_records(baseline_tenant, count, end)
        started = time.perf_counter()
        for offset in range(0, count, BATCH):
            events = [parse_cloudevent(record.value or b"") for record in baseline_records[offset : offset + BATCH]]
            async with sessions() as session, session.begin():
                await inbox.first_deliveries(session, events)
        baseline = count / (time.perf_counter() - started)

        keeper = SloKeeper(engine_units(sessions), BundleCache(), status_interval_seconds=60)
        records = signal_records(tenant, count, end)
        started = time.perf_counter()
        for offset in range(0, count, BATCH):
            await keeper.on_signal_records(records[offset : offset + BATCH])
        measured = count / (time.perf_counter() - started)
    finally:
        async with sessions() as session, session.begin():
            for table in (
                tables.slo_state_changes,
                tables.slo_maintenance,
                tables.slo_availability_minutes,
                tables.slo_availability_days,
                tables.slo_ratio_minutes,
                tables.slo_ratio_days,
                tables.slo_evaluations,
                tables.config_versions,
                tables.inbox,
            ):
                await session.execute(sa.delete(table).where(table.c.tenant_id.in_([tenant, baseline_tenant])))
        await engine.dispose()
    return measured, baseline


@dataclass(frozen=True)
class PlainMinute:
    """The baseline's minute: good and total as `Decimal`, summed in a plain loop."""

    minute: datetime
    good: Decimal
    total: Decimal


def evaluation(slos: int) -> tuple[float, float]:
    at = datetime(2026, 6, 1, tzinfo=UTC)
    minutes = 90 * 1_440
    definition = slo_definition(
        parse_bundle(
            "slos:\n  - {id: api, service: api, sli: {type: ratio, sli: requests}, objective: 99.9, "
            "window: {rolling: 90d}}\n"
        ).slos[0]
    )
    rows = [RatioMinute(at - timedelta(minutes=minutes - index), 999 + index % 2, 1_000) for index in range(minutes)]
    plain = [PlainMinute(row.minute, Decimal(row.good), Decimal(row.total)) for row in rows]
    started = time.perf_counter()
    for _ in range(slos):
        good = total = Decimal(0)
        for minute in plain:
            good += minute.good
            total += minute.total
    baseline = time.perf_counter() - started
    # The columns as `SqlSeriesRepository.ratio_series` returns them (integer arrays decoded by asyncpg); each SLO
    # gets its own copy, as each evaluation reads its own, so nothing computed for one is reused by the next.
    columns = ratio_counts(rows)
    started = time.perf_counter()
    for _ in range(slos):
        series = MinuteSeries(list(columns.minutes), list(columns.total), list(columns.bad))
        alert_transitions(definition, evaluate(definition, series, at), frozenset())
    return time.perf_counter() - started, baseline


async def stored_evaluation(slos: int) -> tuple[float, float]:
    """Seconds per SLO reading 90 days of stored minutes from PostgreSQL and evaluating them: with the minutes
    older than the lookbacks summed from the day sums (what the service does for occurrences SLOs), and with
    the whole window read as arrays (what it does with service hours, recurring maintenance or timeslices)."""
    url = os.environ["SLA_ENGINE_DATABASE_URL"]
    engine = create_engine(url, pool_size=2)
    sessions = session_factory(engine)
    tenant = f"bench-slo-{uuid.uuid4().hex[:8]}"
    at = datetime.now(UTC).replace(second=0, microsecond=0)
    start = at - timedelta(days=90)
    definition = slo_definition(
        parse_bundle(
            "slos:\n  - {id: api, service: api, sli: {type: ratio, sli: requests}, objective: 99.9, "
            "window: {rolling: 90d}}\n"
        ).slos[0]
    )
    r = tables.slo_ratio_minutes
    minute = sa.func.generate_series(start, at - timedelta(minutes=1), timedelta(minutes=1)).column_valued("m")
    async with sessions() as session, session.begin():
        await session.execute(
            sa.insert(r).from_select(
                ["tenant_id", "service", "sli", "minute", "good", "total"],
                (
                    sa.select(
                        sa.literal(tenant),
                        sa.literal("api"),
                        sa.literal("requests"),
                        minute,
                        999 + sa.cast(sa.extract("epoch", minute) / 60, sa.Integer) % 2,
                        sa.literal(1_000),
                    )
                ),
            )
        )
        await SqlRollupRepository(session).refresh_ratio_days(tenant, "api", "requests")
    try:
        timings = []
        for split in (at - timedelta(days=3), None):
            started = time.perf_counter()
            for _ in range(slos):
                async with sessions() as session:
                    series = await SqlSeriesRepository(session).ratio_series(
                        tenant, "api", "requests", start, at, split
                    )
                    evaluate(definition, series, at)
            timings.append((time.perf_counter() - started) / slos)
    finally:
        async with sessions() as session, session.begin():
            for table in (r, tables.slo_ratio_days):
                await session.execute(sa.delete(table).where(table.c.tenant_id == tenant))
        await engine.dispose()
    return timings[0], timings[1]


def main() -> None:
    slos = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000
    signals = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    measured, baseline = asyncio.run(ingestion(signals))
    print(
        f"ingestion into rollups: {measured:,.0f} signals/s "
        f"(baseline, inbox only: {baseline:,.0f} signals/s; {signals:,} signals, batches of {BATCH})"
    )
    elapsed, floor = evaluation(slos)
    print(
        f"evaluation of {slos:,} SLOs x 90 days of minutes: {elapsed:.1f} s, {1_000 * elapsed / slos:.1f} ms per SLO "
        f"(baseline, plain sum of the same minutes: {floor:.1f} s; ratio {elapsed / floor:.2f})"
    )
    stored = max(1, slos // 10)
    ahead, whole = asyncio.run(stored_evaluation(stored))
    print(
        f"reading 90 days of stored minutes and evaluating, {stored:,} SLOs: {1_000 * ahead:.1f} ms per SLO with "
        f"the older minutes summed from day sums, {1_000 * whole:.1f} ms reading the whole window as arrays "
        f"(plain sum of the minutes, for scale: {1_000 * floor / slos:.1f} ms)"
    )


if __name__ == "__main__":
    main()
