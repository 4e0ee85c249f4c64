"""`slm-intake import` of 100,000 changes: changes/s beside a plain COPY of the same rows.

- Export: a Jira `expand=changelog` export as JSON Lines, `--changes` changes in tickets of 10 (the creation,
  7 status/assignee histories, 2 comments), all within the last 60 days (inside the accepted age).
- Import: `HistoryImport` in this process, as `slm-intake import jira` runs it: rebuild every change, map it
  with the webhook adapter, the acceptance rules, the dedup ledger + archive + outbox rows in batches of
  `max_batch_events` (1,000), one transaction each. Changes/s from the first line read to the last commit.
  Output topics are prefixed `bench.<run>.` and the bench tenant's rows are deleted at the end.
- Pure: the same rebuild + map + acceptance without the database (where the CPU goes).
- Baseline: the ledger rows the import wrote (raw and canonical bytes included), `COPY`ed with asyncpg into
  an empty table shaped like `received_events`: what writing the same rows costs with nothing else.

Run: `uv run python bench/intake/bench_import.py [--changes N]` with the stack's environment (`make bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import asyncpg

from intake.app import webhook_cipher
from intake.domain import accept
from intake.domain.adapters import ADAPTERS, snapshot_of
from intake.domain.history import jira_payloads
from intake.domain.mapping import DEFAULTS
from intake.handlers.intake import EventIntake, limits_of
from intake.importer import HistoryImport
from intake.settings import IntakeSettings
from intake.unit_of_work import IntakeUnitOfWork
from scripts.localstack import discover
from slm_shared.db import create_engine, session_factory
from slm_shared.outbox import asyncpg_dsn

CHANGES_PER_TICKET = 10
STATUSES = [
    "Open",
    "In Progress",
    "Waiting for customer",
    "In Progress",
    "Waiting for customer",
    "In Progress",
    "Resolved",
]


def jira_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def issue(n: int, start: datetime) -> dict[str, Any]:
    """One issue with 10 changes: created, 7 histories (status moves, the first also assigns), 2 comments."""
    created = start + timedelta(minutes=n)
    histories = []
    for h in range(7):
        items: list[dict[str, Any]] = [
            {"field": "status", "fromString": (["Open", *STATUSES])[h], "toString": STATUSES[h]}
        ]
        if h == 0:
            items.append(
                {"field": "assignee", "from": None, "fromString": None, "to": "agent-1", "toString": "Agent One"}
            )
        histories.append(
            {"id": str(n * 10 + h), "created": jira_time(created + timedelta(minutes=10 * (h + 1))), "items": items}
        )
    comments = [
        {
            "id": str(n * 10 + 7 + c),
            "created": jira_time(created + timedelta(minutes=15 + 20 * c)),
            "author": {"accountId": "agent-1" if c == 0 else "customer-1", "displayName": "x"},
            "jsdPublic": True,
            "body": "reply",
        }
        for c in range(2)
    ]
    return {
        "id": str(100000 + n),
        "key": f"BEN-{n}",
        "self": "https://bench.atlassian.net/rest/api/2/issue/1",
        "fields": {
            "summary": f"Bench ticket {n}",
            "issuetype": {"name": "Incident"},
            "priority": {"name": "High"},
            "status": {"name": "Resolved"},
            "components": [{"name": "email"}],
            "reporter": {"accountId": "customer-1"},
            "assignee": {"accountId": "agent-1", "displayName": "Agent One"},
            "created": jira_time(created),
            "updated": jira_time(created + timedelta(minutes=70)),
            "comment": {"comments": comments},
        },
        "changelog": {"histories": histories},
    }


def write_export(path: Path, tickets: int) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=60)
    with path.open("w", encoding="utf-8") as out:
        for n in range(tickets):
            out.write(json.dumps(issue(n, start)) + "\n")


def pure_rate(path: Path, settings: IntakeSettings, tenant: str) -> tuple[int, float]:
    """Rebuild, map and validate every change without the database."""
    adapter, mapping, limits = ADAPTERS["jira"], DEFAULTS["jira"], limits_of(settings)
    now = datetime.now(UTC)
    count = 0
    began = time.perf_counter()
    with path.open("rb") as lines:
        for line in lines:
            previous = None
            for payload in jira_payloads(json.loads(line)):
                for document in adapter.events(payload, mapping, previous):
                    accept(document, tenant_id=tenant, now=now, limits=limits)
                    previous = snapshot_of(document) if document["type"] == "itsm.ticket.v1" else previous
                    count += 1
    return count, time.perf_counter() - began


async def run(changes: int) -> None:
    stack = discover()
    if stack is None:
        raise SystemExit("no stack: run `make up` and source .stack/env")
    run_id = uuid.uuid4().hex[:8]
    tenant = f"bench-import-{run_id}"
    settings = IntakeSettings.model_validate(
        {
            "database_url": stack.database_urls["intake"],
            "output_topic_prefix": f"bench.{run_id}.",
            "log_level": "WARNING",
        }
    )
    tickets = changes // CHANGES_PER_TICKET
    dsn = asyncpg_dsn(stack.database_urls["intake"])
    with tempfile.TemporaryDirectory() as folder:
        export = Path(folder) / "issues.jsonl"
        write_export(export, tickets)
        pure_count, pure_seconds = pure_rate(export, settings, tenant)
        engine = create_engine(stack.database_urls["intake"], pool_size=2)
        sessions = session_factory(engine)

        def units() -> IntakeUnitOfWork:
            return IntakeUnitOfWork(sessions, webhook_cipher(settings))

        importer = HistoryImport(EventIntake(units, settings), units, settings)
        began = time.perf_counter()
        summary = await importer.run(tenant, "jira", export)
        import_seconds = time.perf_counter() - began
        await engine.dispose()
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT tenant_id, source, event_id, type, event_time, received_at, channel, raw, canonical, upstream_ref "
            "FROM received_events WHERE tenant_id = $1",
            tenant,
        )
        records = [tuple(row) for row in rows]
        await connection.execute("CREATE TEMP TABLE copy_baseline (LIKE received_events INCLUDING ALL)")
        began = time.perf_counter()
        await connection.copy_records_to_table(
            "copy_baseline",
            records=records,
            columns=[
                "tenant_id",
                "source",
                "event_id",
                "type",
                "event_time",
                "received_at",
                "channel",
                "raw",
                "canonical",
                "upstream_ref",
            ],
        )
        copy_seconds = time.perf_counter() - began
        await connection.execute("DELETE FROM outbox WHERE key LIKE $1", f"{tenant}/%")
        await connection.execute("DELETE FROM received_events WHERE tenant_id = $1", tenant)
        await connection.execute("DELETE FROM rejected_events WHERE tenant_id = $1", tenant)
    finally:
        await connection.close()
    rejected = sum(summary.rejected.values())
    print(
        f"import of {changes:,} Jira changes ({tickets:,} tickets of {CHANGES_PER_TICKET}); "
        f"imported {summary.imported:,}, duplicate {summary.duplicate:,}, rejected {rejected:,}"
    )
    print(f"{'path':<58} {'rows':>9} {'seconds':>8} {'rows/s':>9}")
    table = [
        ("slm-intake import (rebuild, map, rules, ledger+archive+outbox)", summary.imported, import_seconds),
        ("  of which pure rebuild + map + rules (no database)", pure_count, pure_seconds),
        ("plain COPY of the same ledger rows (asyncpg)", len(records), copy_seconds),
    ]
    for name, count, seconds in table:
        print(f"{name:<58} {count:>9,} {seconds:>8.2f} {count / seconds:>9,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100_000)
    asyncio.run(run(parser.parse_args().changes))


if __name__ == "__main__":
    main()
