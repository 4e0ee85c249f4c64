"""Intake's SQL repositories, each built with the unit of work's session: the dedup ledger with its archive,
rejected events, webhook mappings, tenants with keys. None commits."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from intake import tables
from intake.domain.adapters import Snapshot, TicketRef
from intake.domain.mapping import MappingOverride, System
from slm_shared.events import TICKET_EVENT

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncSession

    from intake.domain import Routed

# One statement for a whole batch: unnest the columns, skip keys already in the ledger, return the new ones.
_LEDGER_INSERT = sa.text(
    "INSERT INTO received_events (tenant_id, source, event_id, type, event_time, channel, raw, canonical, "
    "upstream_ref) "
    "SELECT * FROM unnest(CAST(:tenants AS text[]), CAST(:sources AS text[]), CAST(:ids AS text[]), "
    "CAST(:types AS text[]), CAST(:times AS timestamptz[]), CAST(:channels AS text[]), "
    "CAST(:raws AS bytea[]), CAST(:canonicals AS bytea[]), CAST(:refs AS text[])) "
    "ON CONFLICT DO NOTHING RETURNING tenant_id, source, event_id"
)
PURGE_CHUNK = 5000


def db_text(value: str | None, limit: int = 4096) -> str | None:
    """Text PostgreSQL can store: no U+0000, no lone surrogates, bounded length."""
    if value is None:
        return None
    return value[:limit].replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def upstream_ref(item: Routed) -> str | None:
    """`<system>:<upstream id>` of a ticket snapshot an adapter made (its attributes name both), else None."""
    attributes = item.event.data.get("attributes")
    if item.event.type != TICKET_EVENT or not isinstance(attributes, dict):
        return None
    system, upstream_id = attributes.get("upstream_system"), attributes.get("upstream_id")
    if not isinstance(system, str) or not isinstance(upstream_id, str):
        return None
    return db_text(f"{system}:{upstream_id}", 1024)


@dataclass(frozen=True)
class Rejection:
    code: str
    reason: str
    event_id: str | None
    raw: bytes | None
    tenant_id: str | None = None


@dataclass(frozen=True)
class ArchivedEvent:
    canonical: bytes
    event_time: datetime
    source: str
    event_id: str


DedupKey = tuple[str, str, str]


class SqlReceivedEvents:
    """The dedup ledger on (tenant, source, id) and the archive of what it took."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def insert_new(self, channel: str, items: Sequence[tuple[Routed, bytes | None]]) -> set[DedupKey]:
        """Ledger rows for the events whose key it does not hold yet; returns the keys inserted.

        Rows are inserted in dedup-key order so two concurrent batches sharing keys cannot deadlock.
        """
        if not items:
            return set()
        ordered = sorted(items, key=lambda pair: pair[0].dedup_key)
        rows = await self._session.execute(
            _LEDGER_INSERT,
            {
                "tenants": [item.event.tenantid for item, _ in ordered],
                "sources": [item.event.source for item, _ in ordered],
                "ids": [item.event.id for item, _ in ordered],
                "types": [item.event.type for item, _ in ordered],
                "times": [item.event.time for item, _ in ordered],
                "channels": [channel] * len(ordered),
                "raws": [raw for _, raw in ordered],
                "canonicals": [item.canonical for item, _ in ordered],
                "refs": [upstream_ref(item) for item, _ in ordered],
            },
        )
        return {(row.tenant_id, row.source, row.event_id) for row in rows}

    async def last_snapshot(self, tenant_id: str, ref: TicketRef) -> Snapshot | None:
        """The archived canonical snapshot of the upstream ticket with the latest event time, if any."""
        table = tables.received_events
        row = (
            await self._session.execute(
                sa.select(table.c.canonical)
                .where(table.c.tenant_id == tenant_id, table.c.upstream_ref == ref.key, table.c.canonical.is_not(None))
                .order_by(table.c.event_time.desc(), table.c.received_at.desc())
                .limit(1)
            )
        ).first()
        if row is None:
            return None
        data = json.loads(row.canonical).get("data", {})
        return Snapshot(str(data.get("ticket_id")), data)

    async def count_archive(self, tenant_id: str, start: datetime, end: datetime, types: Sequence[str] | None) -> int:
        statement = (
            sa.select(sa.func.count())
            .select_from(tables.received_events)
            .where(_archive_filter(tenant_id, start, end, types))
        )
        return int((await self._session.execute(statement)).scalar_one())

    async def archive_page(
        self,
        tenant_id: str,
        start: datetime,
        end: datetime,
        types: Sequence[str] | None,
        after: ArchivedEvent | None,
        limit: int,
    ) -> list[ArchivedEvent]:
        """Archived canonical events in event-time order, from just after `after` (keyset pagination)."""
        table = tables.received_events
        order = (table.c.event_time, table.c.source, table.c.event_id)
        statement = sa.select(table.c.canonical, *order).where(_archive_filter(tenant_id, start, end, types))
        if after is not None:
            statement = statement.where(
                sa.tuple_(*order)
                > sa.tuple_(
                    sa.literal(after.event_time, sa.DateTime(timezone=True)),
                    sa.literal(after.source),
                    sa.literal(after.event_id),
                )
            )
        rows = await self._session.execute(statement.order_by(*order).limit(limit))
        return [ArchivedEvent(row.canonical, row.event_time, row.source, row.event_id) for row in rows]

    async def purge(self, *, archive_before: datetime, dedup_before: datetime, tenant_id: str | None) -> dict[str, int]:
        """One chunk of retention work: payloads cleared, keys forgotten (call again until both are zero)."""
        events = tables.received_events
        scope = events.c.tenant_id == tenant_id if tenant_id else sa.true()
        key = sa.tuple_(events.c.tenant_id, events.c.source, events.c.event_id)
        archived = (
            sa.select(events.c.tenant_id, events.c.source, events.c.event_id)
            .where(events.c.received_at < archive_before, events.c.canonical.is_not(None), scope)
            .limit(PURGE_CHUNK)
        )
        cleared = await self._session.execute(
            sa.update(events).where(key.in_(archived)).values(raw=None, canonical=None)
        )
        forgotten = (
            sa.select(events.c.tenant_id, events.c.source, events.c.event_id)
            .where(events.c.received_at < dedup_before, scope)
            .limit(PURGE_CHUNK)
        )
        deleted = await self._session.execute(sa.delete(events).where(key.in_(forgotten)))
        return {"archive_cleared": _rowcount(cleared), "dedup_forgotten": _rowcount(deleted)}


class SqlRejections:
    """Rejected events kept for the tenant to see why (`GET /v1/rejections`)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, channel: str, rejections: Sequence[Rejection]) -> None:
        if not rejections:
            return
        await self._session.execute(
            sa.insert(tables.rejected_events),
            [
                {
                    "tenant_id": db_text(item.tenant_id, 512),
                    "channel": channel,
                    "code": item.code,
                    "reason": db_text(item.reason),
                    "event_id": db_text(item.event_id, 512),
                    "raw": item.raw,
                }
                for item in rejections
            ],
        )

    async def recent(self, tenant_id: str, limit: int) -> list[dict[str, Any]]:
        table = tables.rejected_events
        rows = await self._session.execute(
            sa.select(
                table.c.id,
                table.c.channel,
                table.c.code,
                table.c.reason,
                table.c.event_id,
                table.c.raw,
                table.c.received_at,
            )
            .where(table.c.tenant_id == tenant_id)
            .order_by(table.c.id.desc())
            .limit(limit)
        )
        return [dict(row._mapping) for row in rows]

    async def purge(self, *, before: datetime, tenant_id: str | None) -> int:
        """One chunk of old rejections dropped; returns how many (call again until zero)."""
        rejected = tables.rejected_events
        scope = rejected.c.tenant_id == tenant_id if tenant_id else sa.true()
        old = sa.select(rejected.c.id).where(rejected.c.received_at < before, scope).limit(PURGE_CHUNK)
        return _rowcount(await self._session.execute(sa.delete(rejected).where(rejected.c.id.in_(old))))


class SqlMappings:
    """Each tenant's override of a system's default webhook mapping."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def override(self, tenant_id: str, system: System) -> MappingOverride | None:
        table = tables.webhook_mappings
        stored = (
            await self._session.execute(
                sa.select(table.c.override).where(table.c.tenant_id == tenant_id, table.c.system == system)
            )
        ).scalar()
        return None if stored is None else MappingOverride.model_validate(stored)

    async def save(self, tenant_id: str, system: System, override: MappingOverride) -> None:
        statement = insert(tables.webhook_mappings).values(
            tenant_id=tenant_id, system=system, override=override.model_dump(mode="json", exclude_defaults=True)
        )
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=["tenant_id", "system"],
                set_={"override": statement.excluded.override, "updated_at": sa.func.now()},
            )
        )


class SqlTenants:
    """The tenants intake knows, from its API keys."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def with_keys(self) -> list[str]:
        """Every tenant ever given an API key (revoked ones too: their data still ages out)."""
        rows = await self._session.execute(sa.select(tables.api_keys.c.tenant_id).distinct())
        return sorted(row.tenant_id for row in rows)

    async def known(self, tenants: set[str]) -> set[str]:
        """The tenants among `tenants` that have an active API key."""
        if not tenants:
            return set()
        keys = tables.api_keys
        rows = await self._session.execute(
            sa.select(keys.c.tenant_id)
            .distinct()
            .where(keys.c.tenant_id.in_(sorted(tenants)), keys.c.status == "active")
        )
        return {row.tenant_id for row in rows}


def _archive_filter(
    tenant_id: str, start: datetime, end: datetime, types: Sequence[str] | None
) -> sa.ColumnElement[bool]:
    table = tables.received_events
    condition = sa.and_(
        table.c.tenant_id == tenant_id,
        table.c.event_time >= start,
        table.c.event_time < end,
        table.c.canonical.is_not(None),
    )
    return sa.and_(condition, table.c.type.in_(list(types))) if types else condition


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
