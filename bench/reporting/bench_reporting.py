"""Report generation time for 10k, 100k and 1M clock outcomes in a month: rollups versus a plain scan.

For each size, a tenant's month (October 2026, UTC) of clock outcomes, ticket volume transitions and survey
answers is loaded with COPY into a scratch copy of reporting's schema; the daily rollups are built from them
the way the consumers maintain them. Then the same month's report is generated
  * by reporting's own code path (`ReportService.generate` + the JSON document), and
  * by a straightforward SQL scan of the raw read models (no rollups),
each run three times (the median is printed). The service review pack of the same month (reviews.build_review:
the report, three periods of per-service attainment, the quality targets below over three periods, CSAT and
complaints) is timed beside them. Usage: `python bench/reporting/bench_reporting.py [sizes...]`.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

# `python bench/reporting/bench_reporting.py` puts only this folder on sys.path; the repo root holds `scripts`.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import asyncpg

from reporting.domain.config import ReportingConfig
from reporting.read_side.config import load_config, save_config
from reporting.reports import ReportService, report_document
from reporting.reviews import build_review, parse_period, review_document
from scripts.localstack import REPO, discover
from slm_shared.db import create_engine, session_factory
from slm_shared.outbox import asyncpg_dsn

MONTH_START = datetime(2026, 10, 1, tzinfo=UTC)
MONTH_END = datetime(2026, 11, 1, tzinfo=UTC)
SERVICES = [f"svc-{n}" for n in range(8)]
CUSTOMERS = [f"cust-{n}" for n in range(40)]
PRIORITIES = ["P1", "P2", "P3", "P4"]
TARGETS = {
    ("response", "P1"): 900,
    ("response", "P2"): 3600,
    ("response", "P3"): 14400,
    ("response", "P4"): 86400,
    ("resolution", "P1"): 14400,
    ("resolution", "P2"): 28800,
    ("resolution", "P3"): 259200,
    ("resolution", "P4"): 432000,
}
RUNS = 3
# The trend reaches six months back: some older data, so the scan has neighbours to skip.
HISTORY_SHARE = 0.25


def outcomes(tenant: str, count: int, rng: random.Random) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    month_seconds = (MONTH_END - MONTH_START).total_seconds()
    for number in range(count):
        ticket = f"INC-{number // 2}"
        metric = "response" if number % 2 == 0 else "resolution"
        priority = rng.choice(PRIORITIES)
        agreement, policy = ("OLA", "desk-ola") if rng.random() < 0.1 else ("SLA", "gold-incidents")
        target = TARGETS[(metric, priority)]
        draw = rng.random()
        history = rng.random() < HISTORY_SHARE
        start = (
            (MONTH_START - timedelta(days=rng.randint(1, 180)))
            if history
            else MONTH_START + timedelta(seconds=rng.random() * month_seconds * 0.98)
        )
        stop = start + timedelta(seconds=rng.randint(60, 3 * 86400))
        if stop >= MONTH_END:
            stop = MONTH_END - timedelta(seconds=1)
        if draw < 0.90:
            state, elapsed, breached_at, stopped_at = "met", rng.randint(1, target), None, stop
        elif draw < 0.96:
            elapsed = target + rng.randint(1, target)
            state, breached_at, stopped_at = "breached", stop - timedelta(seconds=30), stop
        elif draw < 0.98:
            state, elapsed, breached_at, stopped_at = "running", rng.randint(1, target), None, None
        else:
            state, elapsed, breached_at, stopped_at = "cancelled", rng.randint(1, target), None, stop
        rows.append(
            (
                tenant,
                ticket,
                policy,
                metric,
                1,
                agreement,
                3,
                state,
                breached_at is not None,
                rng.choice(SERVICES),
                rng.choice(CUSTOMERS),
                priority,
                "incident",
                "cn-business",
                target,
                elapsed,
                start,
                None,
                breached_at,
                stopped_at,
                "met",
                stopped_at or start,
                f"e{number}",
                0,
            )
        )
    return rows


OUTCOME_COLUMNS = [
    "tenant_id",
    "ticket_id",
    "policy_id",
    "metric",
    "cycle",
    "agreement",
    "policy_version",
    "state",
    "breached",
    "service",
    "customer",
    "priority",
    "kind",
    "calendar",
    "target_seconds",
    "elapsed_seconds",
    "started_at",
    "due_at",
    "breached_at",
    "stopped_at",
    "last_transition",
    "last_event_time",
    "last_event_id",
    "recalculations",
]


def transitions(outcome_rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """A created and (for stopped resolution cycles) a resolved transition per ticket."""
    rows: list[tuple[object, ...]] = []
    for row in outcome_rows:
        tenant, ticket, _, metric, _, _, _, state, _, service, customer, priority = row[:12]
        started, stopped = row[16], row[19]
        if metric == "response":
            rows.append((tenant, ticket, 0, started, "created", 1, priority, service, customer, "incident"))
        elif stopped is not None and state in ("met", "breached"):
            rows.append((tenant, ticket, 1, stopped, "resolved", -1, priority, service, customer, "incident"))
    return rows


async def load(dsn: str, tenant: str, size: int) -> float:
    rng = random.Random(size)
    started = time.perf_counter()
    clock_rows = outcomes(tenant, size, rng)
    volume_rows = transitions(clock_rows)
    answers = [
        (tenant, "bench", f"f{i}", row[1], row[9], row[10], rng.randint(1, 5), 5, None, row[19])
        for i, row in enumerate(clock_rows)
        if row[3] == "resolution" and row[19] and rng.random() < 0.1
    ]
    connection = await asyncpg.connect(dsn)
    try:
        await connection.copy_records_to_table("clock_outcomes", records=clock_rows, columns=OUTCOME_COLUMNS)
        await connection.copy_records_to_table(
            "ticket_transitions",
            records=volume_rows,
            columns=[
                "tenant_id",
                "ticket_id",
                "position",
                "at",
                "kind",
                "open_delta",
                "priority",
                "service",
                "customer",
                "ticket_kind",
            ],
        )
        await connection.copy_records_to_table(
            "feedback",
            records=answers,
            columns=[
                "tenant_id",
                "source",
                "event_id",
                "ticket_id",
                "service",
                "customer",
                "score",
                "scale",
                "comment",
                "answered_at",
            ],
        )
        # The rollups as the consumers keep them, built in one statement each.
        await connection.execute(
            """
            INSERT INTO clock_daily SELECT tenant_id, (stopped_at AT TIME ZONE 'UTC')::date, service, customer,
                   agreement, policy_id, policy_version, calendar, metric, priority,
                   count(*) FILTER (WHERE state = 'met'), count(*) FILTER (WHERE state = 'breached'),
                   sum(elapsed_seconds),
                   coalesce(sum(greatest(elapsed_seconds - target_seconds, 0)) FILTER (WHERE state = 'breached'), 0)
            FROM clock_outcomes WHERE tenant_id = $1 AND state IN ('met', 'breached')
            GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10""",
            tenant,
        )
        await connection.execute(
            """
            INSERT INTO clock_daily_service SELECT tenant_id, day, service, agreement, policy_id, policy_version,
                   calendar, metric, priority, sum(met), sum(breached), sum(elapsed_sum), sum(over_target_sum)
            FROM clock_daily WHERE tenant_id = $1 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9""",
            tenant,
        )
        await connection.execute(
            """
            INSERT INTO ticket_daily SELECT tenant_id, (at AT TIME ZONE 'UTC')::date, service, customer, priority,
                   count(*) FILTER (WHERE kind = 'created'), count(*) FILTER (WHERE kind = 'resolved'),
                   count(*) FILTER (WHERE kind = 'reopened'), count(*) FILTER (WHERE kind = 'cancelled'),
                   sum(open_delta)
            FROM ticket_transitions WHERE tenant_id = $1 GROUP BY 1, 2, 3, 4, 5""",
            tenant,
        )
        await connection.execute("INSERT INTO tenants_seen VALUES ($1, $2)", tenant, MONTH_START - timedelta(days=180))
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()
    return time.perf_counter() - started


SCAN_SQL = {
    "cells": """SELECT service, customer, agreement, policy_id, policy_version, calendar, metric, priority,
                       count(*) FILTER (WHERE state = 'met'), count(*) FILTER (WHERE state = 'breached')
                FROM clock_outcomes WHERE tenant_id = $1 AND stopped_at >= $2 AND stopped_at < $3
                  AND state IN ('met', 'breached') GROUP BY 1, 2, 3, 4, 5, 6, 7, 8""",
    "times": """SELECT agreement, metric, priority, count(*), sum(elapsed_seconds),
                       percentile_disc(0.5) WITHIN GROUP (ORDER BY elapsed_seconds),
                       percentile_disc(0.9) WITHIN GROUP (ORDER BY elapsed_seconds)
                FROM clock_outcomes WHERE tenant_id = $1 AND stopped_at >= $2 AND stopped_at < $3
                  AND state IN ('met', 'breached') GROUP BY GROUPING SETS ((1, 2, 3), (1, 2))""",
    "breaches": """SELECT * FROM clock_outcomes WHERE tenant_id = $1 AND state = 'breached'
                   AND stopped_at >= $2 AND stopped_at < $3""",
    "open": """SELECT * FROM clock_outcomes WHERE tenant_id = $1 AND breached AND breached_at < $3
               AND (stopped_at IS NULL OR stopped_at >= $3) AND state <> 'cancelled' AND $2::timestamptz IS NOT NULL""",
    "volumes": """SELECT priority, count(*) FILTER (WHERE kind = 'created'), count(*) FILTER (WHERE kind = 'resolved')
                  FROM ticket_transitions WHERE tenant_id = $1 AND at >= $2 AND at < $3 GROUP BY 1""",
    "backlog": """SELECT (SELECT sum(open_delta) FROM ticket_transitions WHERE tenant_id = $1 AND at < $2),
                         (SELECT sum(open_delta) FROM ticket_transitions WHERE tenant_id = $1 AND at < $3)""",
    "csat": """SELECT service, count(*), count(*) FILTER (WHERE score * 5 >= 4 * scale) FROM (
                 SELECT DISTINCT ON (ticket_id) * FROM feedback WHERE tenant_id = $1 AND answered_at >= $2
                   AND answered_at < $3 ORDER BY ticket_id, answered_at DESC) x GROUP BY 1""",
    "clocks": """SELECT * FROM clock_outcomes WHERE tenant_id = $1 AND ((stopped_at >= $2 AND stopped_at < $3)
                 OR (stopped_at IS NULL AND started_at < $3)) ORDER BY ticket_id, policy_id, metric, cycle
                 LIMIT 1001""",
}


def month_starts(count: int) -> list[tuple[datetime, datetime]]:
    bounds, end = [], MONTH_END
    for _ in range(count):
        start = (end - timedelta(days=1)).replace(day=1)
        bounds.append((start, end))
        end = start
    return bounds


async def scan(dsn: str, tenant: str) -> float:
    """The same report's numbers straight from the raw rows: this month and six for the trend, all scanned."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SET work_mem = '64MB'")
        started = time.perf_counter()
        periods = month_starts(7)
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            for start, end in periods:  # attainment and CSAT for the trend
                await connection.fetch(SCAN_SQL["cells"], tenant, start, end)
                await connection.fetch(SCAN_SQL["csat"], tenant, start, end)
            for name in ("times", "breaches", "open", "volumes", "backlog", "clocks"):
                await connection.fetch(SCAN_SQL[name], tenant, MONTH_START, MONTH_END)
        return time.perf_counter() - started
    finally:
        await connection.close()


async def generate(url: str, tenant: str) -> tuple[float, int]:
    engine = create_engine(url, pool_size=1)
    service = ReportService(session_factory(engine), lambda: datetime.now(UTC))
    try:
        started = time.perf_counter()
        report = await service.generate(tenant, MONTH_START, MONTH_END)
        document = report_document(report)
        return time.perf_counter() - started, document["summary"]["overall"]["denominator"]
    finally:
        await engine.dispose()


# Targets that read every kind of fact the review measures (answers, resolutions, open tickets, cycles).
REVIEW_CONFIG = ReportingConfig.model_validate(
    {
        "quality_targets": [
            {"id": "satisfied", "kpi": "csat_satisfied", "threshold": 80},
            {"id": "reopens", "kpi": "reopen_rate", "threshold": 5},
            {"id": "first-contact", "kpi": "first_contact_resolution", "threshold": 80},
            {"id": "backlog", "kpi": "backlog_age_p90", "threshold": 864000},
            {"id": "ola", "kpi": "breach_rate", "threshold": 10, "agreement": "OLA"},
        ],
        "workload_limits": [{"tickets_per_period": 100000}],
    }
)


async def review(url: str, tenant: str) -> float:
    engine = create_engine(url, pool_size=1)
    sessions = session_factory(engine)
    try:
        started = time.perf_counter()
        async with sessions() as session, session.begin():
            config, version = await load_config(session, tenant)
            review_document(
                await build_review(
                    session, tenant, parse_period("2026-10", config), config, version, None, datetime.now(UTC)
                )
            )
        return time.perf_counter() - started
    finally:
        await engine.dispose()


async def configure(url: str, tenant: str) -> None:
    engine = create_engine(url, pool_size=1)
    try:
        async with session_factory(engine)() as session, session.begin():
            await save_config(session, tenant, REVIEW_CONFIG, datetime.now(UTC))
    finally:
        await engine.dispose()


async def main(sizes: list[int]) -> None:
    stack = discover()
    if stack is None:
        sys.exit("no stack: run `make up` first")
    base = stack.database_urls["reporting"].rsplit("/", 1)[0]
    name = f"bench_reporting_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(asyncpg_dsn(f"{base}/postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{base}/{name}"
    try:
        await asyncio.to_thread(
            subprocess.run,
            [
                str(REPO / ".venv" / "bin" / "alembic"),
                "-c",
                str(REPO / "services" / "reporting" / "alembic.ini"),
                "upgrade",
                "head",
            ],
            env={**os.environ, "REPORTING_DATABASE_URL": url},
            check=True,
            capture_output=True,
            timeout=120,
        )
        print(
            f"{'outcomes':>10} {'load s':>8} {'counted':>9} {'report s':>9} {'scan s':>8} {'scan/report':>12} "
            f"{'review s':>9}"
        )
        for size in sizes:
            tenant = f"bench-{size}"
            loaded = await load(asyncpg_dsn(url), tenant, size)
            await configure(url, tenant)
            await generate(url, tenant)  # warm caches and plans for both, once
            await scan(asyncpg_dsn(url), tenant)
            report_runs, counted = [], 0
            scan_runs, review_runs = [], []
            for _ in range(RUNS):
                elapsed, counted = await generate(url, tenant)
                report_runs.append(elapsed)
                scan_runs.append(await scan(asyncpg_dsn(url), tenant))
                review_runs.append(await review(url, tenant))
            report_s, scan_s = statistics.median(report_runs), statistics.median(scan_runs)
            print(
                f"{size:>10} {loaded:>8.1f} {counted:>9} {report_s:>9.3f} {scan_s:>8.3f} {scan_s / report_s:>12.2f} "
                f"{statistics.median(review_runs):>9.3f}",
                flush=True,
            )
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main([int(a) for a in sys.argv[1:]] or [10_000, 100_000, 1_000_000]))
