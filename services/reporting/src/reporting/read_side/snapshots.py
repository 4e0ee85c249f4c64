"""The read-only snapshot transaction every report and dashboard reads in, and the published report snapshots.

A report's sections must agree with one another, so they are read in one REPEATABLE READ, READ ONLY
transaction; a second connection can join the very same snapshot (`export_snapshot` / `join_snapshot`), as
pg_dump's parallel workers do, to sort the period's cycles for the percentiles beside the other sections.
"""

from __future__ import annotations

import re
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from reporting import tables

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+-[0-9]+")
FORMATS = ("json", "csv", "html", "pdf")


@asynccontextmanager
async def read_only(
    sessions: async_sessionmaker[AsyncSession], snapshot: str | None = None
) -> AsyncIterator[AsyncSession]:
    """A session in one REPEATABLE READ, READ ONLY transaction; in the exported `snapshot` when given."""
    async with sessions() as session, session.begin():
        await begin_read_only(session, snapshot)
        yield session


async def begin_read_only(session: AsyncSession, snapshot: str | None = None) -> None:
    """Make the session's transaction, before its first statement, the snapshot `read_only` opens (a unit of
    work's reads: `ReportingUnitOfWork.read_only`)."""
    if snapshot is not None and not SNAPSHOT_ID.fullmatch(snapshot):
        raise ValueError(f"unexpected snapshot id {snapshot!r}")
    await session.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
    if snapshot is not None:
        await session.execute(sa.text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))


async def export_snapshot(session: AsyncSession) -> str:
    """The id another `read_only` transaction joins to read exactly what this one reads."""
    return str((await session.execute(sa.text("SELECT pg_export_snapshot()"))).scalar_one())


def report_links(base_url: str, report_id: str) -> dict[str, str]:
    """Where a published report is read, in each of its formats."""
    base = base_url.rstrip("/")
    return {fmt: f"{base}/v1/reports/{report_id}?format={fmt}" for fmt in FORMATS}


async def published_reports(session: AsyncSession, tenant: str, limit: int) -> list[dict[str, Any]]:
    """The tenant's published snapshots, newest period first, without their content."""
    t = tables.report_snapshots
    rows = (
        (
            await session.execute(
                sa.select(
                    t.c.report_id,
                    t.c.period_start,
                    t.c.period_end,
                    t.c.scope,
                    t.c.revision,
                    t.c.kind,
                    t.c.amends,
                    t.c.created_at,
                    t.c.content_sha256,
                )
                .where(t.c.tenant_id == tenant)
                .order_by(t.c.period_start.desc(), t.c.scope_key, t.c.revision)
                .limit(limit)
            )
        )
        .mappings()
        .all()
    )
    return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()} for row in rows]


async def published_report(
    session: AsyncSession, tenant: str, report_id: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A published snapshot's content and lineage, exactly as frozen; None when the tenant has no such report."""
    t = tables.report_snapshots
    row = (
        await session.execute(
            sa.select(t.c.content, t.c.lineage).where(t.c.report_id == report_id, t.c.tenant_id == tenant)
        )
    ).first()
    return (row.content, row.lineage) if row is not None else None
