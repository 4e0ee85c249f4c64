"""Intake's SQL: the dedup ledger with its archive, rejected events, mappings, known tenants. Never commits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from intake import tables
from intake.domain import Outcome, Routed, first_occurrences
from intake.domain.adapters import Snapshot, TicketRef
from intake.domain.mapping import MappingOverride, System
from slm_shared.events import TICKET_EVENT
from slm_shared.outbox import Outbox, OutgoingEvent

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


class IntakeRepository:
    def __init__(self, outbox: Outbox, topic_prefix: str = "") -> None:
        self.outbox = outbox
        self.topic_prefix = topic_prefix

    async def record(
        self,
        session: AsyncSession,
        channel: str,
        items: Sequence[tuple[int, Routed, bytes | None]],
    ) -> dict[int, Outcome]:
        """Ledger rows for the events not seen before and their outbox rows; `duplicate` for the others.

        Rows are inserted in dedup-key order so two concurrent batches sharing keys cannot deadlock; the
        outbox rows keep the batch's order, which is the order one ticket's events are published in.
        """
        raws = {index: raw for index, _, raw in items}
        firsts = [(index, item) for index, item, first in first_occurrences([(i, r) for i, r, _ in items]) if first]
        outcomes: dict[int, Outcome] = {index: "duplicate" for index, _, _ in items}
        if not firsts:
            return outcomes
        ordered = sorted(firsts, key=lambda pair: pair[1].dedup_key)
        rows = await session.execute(_LEDGER_INSERT, {
            "tenants": [item.event.tenantid for _, item in ordered],
            "sources": [item.event.source for _, item in ordered],
            "ids": [item.event.id for _, item in ordered],
            "types": [item.event.type for _, item in ordered],
            "times": [item.event.time for _, item in ordered],
            "channels": [channel] * len(ordered),
            "raws": [raws[index] for index, _ in ordered],
            "canonicals": [item.canonical for _, item in ordered],
            "refs": [upstream_ref(item) for _, item in ordered],
        })
        inserted = {(row.tenant_id, row.source, row.event_id) for row in rows}
        outgoing = []
        for index, item in firsts:
            if item.dedup_key in inserted:
                outcomes[index] = "accepted"
                outgoing.append(OutgoingEvent(topic=self.topic_prefix + item.topic, key=item.key, event=item.event))
        await self.outbox.add(session, outgoing)
        return outcomes

    async def last_snapshot(self, session: AsyncSession, tenant_id: str, ref: TicketRef) -> Snapshot | None:
        """The archived canonical snapshot of the upstream ticket with the latest event time, if any."""
        table = tables.received_events
        row = (await session.execute(
            sa.select(table.c.canonical)
            .where(table.c.tenant_id == tenant_id, table.c.upstream_ref == ref.key, table.c.canonical.is_not(None))
            .order_by(table.c.event_time.desc(), table.c.received_at.desc()).limit(1)
        )).first()
        if row is None:
            return None
        data = json.loads(row.canonical).get("data", {})
        return Snapshot(str(data.get("ticket_id")), data)

    async def reject(self, session: AsyncSession, channel: str, rejections: Sequence[Rejection]) -> None:
        if not rejections:
            return
        await session.execute(sa.insert(tables.rejected_events), [
            {
                "tenant_id": db_text(item.tenant_id, 512),
                "channel": channel,
                "code": item.code,
                "reason": db_text(item.reason),
                "event_id": db_text(item.event_id, 512),
                "raw": item.raw,
            }
            for item in rejections
        ])

    async def recent_rejections(self, session: AsyncSession, tenant_id: str, limit: int) -> list[dict[str, Any]]:
        table = tables.rejected_events
        rows = await session.execute(
            sa.select(table.c.id, table.c.channel, table.c.code, table.c.reason, table.c.event_id, table.c.raw,
                      table.c.received_at)
            .where(table.c.tenant_id == tenant_id).order_by(table.c.id.desc()).limit(limit)
        )
        return [dict(row._mapping) for row in rows]

    async def tenants_with_keys(self, session: AsyncSession) -> list[str]:
        """Every tenant ever given an API key (revoked ones too: their data still ages out)."""
        rows = await session.execute(sa.select(tables.api_keys.c.tenant_id).distinct())
        return sorted(row.tenant_id for row in rows)

    async def known_tenants(self, session: AsyncSession, tenants: set[str]) -> set[str]:
        """The tenants among `tenants` that have an active API key."""
        if not tenants:
            return set()
        keys = tables.api_keys
        rows = await session.execute(
            sa.select(keys.c.tenant_id).distinct()
            .where(keys.c.tenant_id.in_(sorted(tenants)), keys.c.status == "active")
        )
        return {row.tenant_id for row in rows}

    async def mapping_override(self, session: AsyncSession, tenant_id: str, system: System) -> MappingOverride | None:
        table = tables.webhook_mappings
        stored = (await session.execute(
            sa.select(table.c.override).where(table.c.tenant_id == tenant_id, table.c.system == system)
        )).scalar()
        return None if stored is None else MappingOverride.model_validate(stored)

    async def save_mapping(
        self, session: AsyncSession, tenant_id: str, system: System, override: MappingOverride
    ) -> None:
        statement = insert(tables.webhook_mappings).values(
            tenant_id=tenant_id, system=system, override=override.model_dump(mode="json", exclude_defaults=True)
        )
        await session.execute(statement.on_conflict_do_update(
            index_elements=["tenant_id", "system"],
            set_={"override": statement.excluded.override, "updated_at": sa.func.now()},
        ))

    def _archive_filter(
        self, tenant_id: str, start: datetime, end: datetime, types: Sequence[str] | None
    ) -> sa.ColumnElement[bool]:
        table = tables.received_events
        condition = sa.and_(
            table.c.tenant_id == tenant_id, table.c.event_time >= start, table.c.event_time < end,
            table.c.canonical.is_not(None),
        )
        return sa.and_(condition, table.c.type.in_(list(types))) if types else condition

    async def count_archive(
        self, session: AsyncSession, tenant_id: str, start: datetime, end: datetime, types: Sequence[str] | None
    ) -> int:
        statement = sa.select(sa.func.count()).select_from(tables.received_events).where(
            self._archive_filter(tenant_id, start, end, types)
        )
        return int((await session.execute(statement)).scalar_one())

    async def archive_page(
        self,
        session: AsyncSession,
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
        statement = sa.select(table.c.canonical, *order).where(self._archive_filter(tenant_id, start, end, types))
        if after is not None:
            statement = statement.where(sa.tuple_(*order) > sa.tuple_(
                sa.literal(after.event_time, sa.DateTime(timezone=True)), sa.literal(after.source),
                sa.literal(after.event_id)))
        rows = await session.execute(statement.order_by(*order).limit(limit))
        return [ArchivedEvent(row.canonical, row.event_time, row.source, row.event_id) for row in rows]

    async def purge(
        self,
        session: AsyncSession,
        *,
        archive_before: datetime,
        dedup_before: datetime,
        rejected_before: datetime,
        tenant_id: str | None = None,
    ) -> dict[str, int]:
        """One chunk of retention work; returns rows touched per kind (call again until all are zero)."""
        events, rejected = tables.received_events, tables.rejected_events
        scope_events = events.c.tenant_id == tenant_id if tenant_id else sa.true()
        scope_rejected = rejected.c.tenant_id == tenant_id if tenant_id else sa.true()
        archived = sa.select(events.c.tenant_id, events.c.source, events.c.event_id).where(
            events.c.received_at < archive_before, events.c.canonical.is_not(None), scope_events
        ).limit(PURGE_CHUNK)
        cleared = await session.execute(
            sa.update(events).where(sa.tuple_(events.c.tenant_id, events.c.source, events.c.event_id).in_(archived))
            .values(raw=None, canonical=None)
        )
        forgotten = sa.select(events.c.tenant_id, events.c.source, events.c.event_id).where(
            events.c.received_at < dedup_before, scope_events
        ).limit(PURGE_CHUNK)
        deleted = await session.execute(
            sa.delete(events).where(sa.tuple_(events.c.tenant_id, events.c.source, events.c.event_id).in_(forgotten))
        )
        old = sa.select(rejected.c.id).where(rejected.c.received_at < rejected_before, scope_rejected)
        old = old.limit(PURGE_CHUNK)
        dropped = await session.execute(sa.delete(rejected).where(rejected.c.id.in_(old)))
        return {
            "archive_cleared": _rowcount(cleared),
            "dedup_forgotten": _rowcount(deleted),
            "rejections_dropped": _rowcount(dropped),
        }


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
