"""The sla-engine's persistence port and its PostgreSQL adapter. Repositories never commit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from sla_engine import tables
from sla_engine.domain.clocks import TransitionKey
from sla_engine.domain.timeline import TicketSnapshot


@dataclass(frozen=True)
class ConfigVersion:
    tenant_id: str
    version: int
    bundle: dict[str, Any]
    source_text: str
    created_at: datetime


@dataclass(frozen=True)
class DueTimer:
    tenant_id: str
    ticket_id: str
    due_at: datetime


class SlaRepository(Protocol):
    async def lock_ticket(self, tenant_id: str, ticket_id: str) -> None: ...
    async def try_lock_ticket(self, tenant_id: str, ticket_id: str) -> bool: ...
    async def add_snapshot(self, tenant_id: str, source: str, event_id: str, snapshot: TicketSnapshot) -> bool: ...
    async def timeline(self, tenant_id: str, ticket_id: str) -> list[TicketSnapshot]: ...
    async def latest_config(self, tenant_id: str) -> ConfigVersion | None: ...
    async def add_config(self, tenant_id: str, bundle: dict[str, Any], source_text: str) -> int: ...
    async def config(self, tenant_id: str, version: int) -> ConfigVersion | None: ...
    async def config_for_ticket(
        self, tenant_id: str, ticket_id: str, first_event_at: datetime
    ) -> ConfigVersion | None: ...
    async def pin_version(self, tenant_id: str, ticket_ids: Sequence[str], version: int) -> None: ...
    async def tickets(self, tenant_id: str, *, only_open: bool) -> list[str]: ...
    async def tickets_active_between(self, tenant_id: str, start: datetime, end: datetime) -> list[str]: ...
    async def saved_clocks(self, tenant_id: str, ticket_id: str) -> dict[tuple[str, str, int], dict[str, Any]]: ...
    async def emitted(self, tenant_id: str, ticket_id: str) -> set[TransitionKey]: ...
    async def record_emitted(self, tenant_id: str, ticket_id: str, keys: Iterable[TransitionKey]) -> None: ...
    async def forget_emitted(self, tenant_id: str, ticket_id: str, keys: Iterable[TransitionKey]) -> None: ...
    async def save_clocks(
        self, tenant_id: str, ticket_id: str, rows: Sequence[dict[str, Any]], now: datetime
    ) -> None: ...
    async def set_timer(self, tenant_id: str, ticket_id: str, due: tuple[datetime, str] | None) -> None: ...
    async def due_timers(self, now: datetime, limit: int) -> list[DueTimer]: ...
    async def next_timer_due(self) -> datetime | None: ...


def _snapshot_from_row(row: Any) -> TicketSnapshot:
    data = row.snapshot
    return TicketSnapshot(
        event_id=row.event_id,
        time=row.event_time,
        arrival=row.arrival,
        ticket_id=row.ticket_id,
        action=data["action"],
        kind=data["kind"],
        status=data["status"],
        priority=data["priority"],
        service=data["service"],
        customer=data["customer"],
        assignment_group=data.get("assignment_group"),
        assignee=data.get("assignee"),
        attributes=data.get("attributes") or {},
    )


class SqlSlaRepository:
    """`SlaRepository` on the service's own PostgreSQL database, inside the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock_ticket(self, tenant_id: str, ticket_id: str) -> None:
        """Serialise all work on one ticket (consumer, timers, replicas) until the transaction ends."""
        await self._session.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"{tenant_id}/{ticket_id}"}
        )

    async def try_lock_ticket(self, tenant_id: str, ticket_id: str) -> bool:
        result = await self._session.execute(
            sa.text("SELECT pg_try_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"{tenant_id}/{ticket_id}"},
        )
        return bool(result.scalar())

    async def add_snapshot(self, tenant_id: str, source: str, event_id: str, snapshot: TicketSnapshot) -> bool:
        data = {
            "action": snapshot.action, "kind": snapshot.kind, "status": snapshot.status,
            "priority": snapshot.priority, "service": snapshot.service, "customer": snapshot.customer,
            "assignment_group": snapshot.assignment_group, "assignee": snapshot.assignee,
            "attributes": dict(snapshot.attributes),
        }
        statement = (
            insert(tables.ticket_events)
            .values(tenant_id=tenant_id, ticket_id=snapshot.ticket_id, source=source, event_id=event_id,
                    event_time=snapshot.time, snapshot=data)
            .on_conflict_do_nothing()
            .returning(tables.ticket_events.c.arrival)
        )
        return (await self._session.execute(statement)).first() is not None

    async def timeline(self, tenant_id: str, ticket_id: str) -> list[TicketSnapshot]:
        t = tables.ticket_events
        rows = await self._session.execute(
            sa.select(t).where(t.c.tenant_id == tenant_id, t.c.ticket_id == ticket_id).order_by(
                t.c.event_time, t.c.arrival
            )
        )
        return [_snapshot_from_row(row) for row in rows]

    async def latest_config(self, tenant_id: str) -> ConfigVersion | None:
        c = tables.config_versions
        row = (
            await self._session.execute(
                sa.select(c).where(c.c.tenant_id == tenant_id).order_by(c.c.version.desc()).limit(1)
            )
        ).first()
        if row is None:
            return None
        return ConfigVersion(row.tenant_id, row.version, row.bundle, row.source_text, row.created_at)

    async def config(self, tenant_id: str, version: int) -> ConfigVersion | None:
        c = tables.config_versions
        row = (
            await self._session.execute(sa.select(c).where(c.c.tenant_id == tenant_id, c.c.version == version))
        ).first()
        return None if row is None else ConfigVersion(row.tenant_id, row.version, row.bundle, row.source_text,
                                                      row.created_at)

    async def config_for_ticket(
        self, tenant_id: str, ticket_id: str, first_event_at: datetime
    ) -> ConfigVersion | None:
        """The ticket's pinned version; a ticket seen for the first time is pinned to the latest."""
        v = tables.ticket_versions
        pinned = (
            await self._session.execute(
                sa.select(v.c.config_version).where(v.c.tenant_id == tenant_id, v.c.ticket_id == ticket_id)
            )
        ).scalar()
        if pinned is not None:
            return await self.config(tenant_id, pinned)
        latest = await self.latest_config(tenant_id)
        if latest is not None:
            await self._session.execute(
                insert(v).values(tenant_id=tenant_id, ticket_id=ticket_id, config_version=latest.version,
                                 first_event_at=first_event_at).on_conflict_do_nothing()
            )
        return latest

    async def pin_version(self, tenant_id: str, ticket_ids: Sequence[str], version: int) -> None:
        v = tables.ticket_versions
        if ticket_ids:
            await self._session.execute(
                sa.update(v).where(v.c.tenant_id == tenant_id, v.c.ticket_id.in_(ticket_ids)).values(
                    config_version=version
                )
            )

    async def tickets(self, tenant_id: str, *, only_open: bool) -> list[str]:
        """Tickets with a pinned version; `only_open`: those with a clock still running or paused."""
        if only_open:
            c = tables.clocks
            statement = sa.select(c.c.ticket_id).where(
                c.c.tenant_id == tenant_id, c.c.state.in_(("running", "paused"))
            ).distinct()
        else:
            v = tables.ticket_versions
            statement = sa.select(v.c.ticket_id).where(v.c.tenant_id == tenant_id)
        return sorted(str(row[0]) for row in await self._session.execute(statement))

    async def tickets_active_between(self, tenant_id: str, start: datetime, end: datetime) -> list[str]:
        t = tables.ticket_events
        statement = sa.select(t.c.ticket_id).where(
            t.c.tenant_id == tenant_id, t.c.event_time >= start, t.c.event_time < end
        ).distinct()
        return sorted(str(row[0]) for row in await self._session.execute(statement))

    async def add_config(self, tenant_id: str, bundle: dict[str, Any], source_text: str) -> int:
        c = tables.config_versions
        # Serialise applies per tenant so versions are gap-free and never collide.
        await self._session.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 1))"), {"key": tenant_id}
        )
        current = (
            await self._session.execute(sa.select(sa.func.max(c.c.version)).where(c.c.tenant_id == tenant_id))
        ).scalar()
        version = int(current or 0) + 1
        await self._session.execute(
            sa.insert(c).values(tenant_id=tenant_id, version=version, bundle=bundle, source_text=source_text)
        )
        return version

    async def saved_clocks(self, tenant_id: str, ticket_id: str) -> dict[tuple[str, str, int], dict[str, Any]]:
        """The clocks as last published, by (policy, metric, cycle)."""
        c = tables.clocks
        rows = await self._session.execute(
            sa.select(c.c.policy_id, c.c.metric, c.c.cycle, c.c.clock).where(
                c.c.tenant_id == tenant_id, c.c.ticket_id == ticket_id
            )
        )
        return {(r.policy_id, r.metric, r.cycle): dict(r.clock) for r in rows}

    async def emitted(self, tenant_id: str, ticket_id: str) -> set[TransitionKey]:
        e = tables.emitted_transitions
        rows = await self._session.execute(
            sa.select(e.c.policy_id, e.c.metric, e.c.cycle, e.c.transition, e.c.at, e.c.threshold).where(
                e.c.tenant_id == tenant_id, e.c.ticket_id == ticket_id
            )
        )
        return {TransitionKey(r.policy_id, r.metric, r.cycle, r.transition, r.at, r.threshold) for r in rows}

    async def record_emitted(self, tenant_id: str, ticket_id: str, keys: Iterable[TransitionKey]) -> None:
        values = [
            {"tenant_id": tenant_id, "ticket_id": ticket_id, "policy_id": k[0], "metric": k[1], "cycle": k[2],
             "transition": k[3], "at": k[4], "threshold": k[5]}
            for k in keys
        ]
        if values:
            await self._session.execute(insert(tables.emitted_transitions).on_conflict_do_nothing(), values)

    async def forget_emitted(self, tenant_id: str, ticket_id: str, keys: Iterable[TransitionKey]) -> None:
        e = tables.emitted_transitions
        for k in keys:
            await self._session.execute(
                sa.delete(e).where(
                    e.c.tenant_id == tenant_id, e.c.ticket_id == ticket_id, e.c.policy_id == k[0],
                    e.c.metric == k[1], e.c.cycle == k[2], e.c.transition == k[3], e.c.at == k[4],
                    e.c.threshold == k[5],
                )
            )

    async def save_clocks(
        self, tenant_id: str, ticket_id: str, rows: Sequence[dict[str, Any]], now: datetime
    ) -> None:
        c = tables.clocks
        await self._session.execute(sa.delete(c).where(c.c.tenant_id == tenant_id, c.c.ticket_id == ticket_id))
        if rows:
            values = [{**row, "tenant_id": tenant_id, "ticket_id": ticket_id, "updated_at": now} for row in rows]
            await self._session.execute(sa.insert(c), values)

    async def set_timer(self, tenant_id: str, ticket_id: str, due: tuple[datetime, str] | None) -> None:
        t = tables.timers
        if due is None:
            await self._session.execute(sa.delete(t).where(t.c.tenant_id == tenant_id, t.c.ticket_id == ticket_id))
            return
        statement = insert(t).values(tenant_id=tenant_id, ticket_id=ticket_id, due_at=due[0], transition=due[1])
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[t.c.tenant_id, t.c.ticket_id],
                set_={"due_at": statement.excluded.due_at, "transition": statement.excluded.transition},
            )
        )

    async def due_timers(self, now: datetime, limit: int) -> list[DueTimer]:
        t = tables.timers
        rows = await self._session.execute(
            sa.select(t.c.tenant_id, t.c.ticket_id, t.c.due_at)
            .where(t.c.due_at <= now)
            .order_by(t.c.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [DueTimer(r.tenant_id, r.ticket_id, r.due_at) for r in rows]

    async def next_timer_due(self) -> datetime | None:
        t = tables.timers
        value: datetime | None = (await self._session.execute(sa.select(sa.func.min(t.c.due_at)))).scalar()
        return value
