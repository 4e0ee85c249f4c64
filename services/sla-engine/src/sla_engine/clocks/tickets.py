"""Ticket snapshots on PostgreSQL: the consumer's store path, timelines, and the tickets a recalculation takes.

Repositories never commit: they work inside the caller's unit of work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from sla_engine import tables
from sla_engine.clocks.rows import snapshot_from_row
from sla_engine.ports import EVENTS_DUE, StoredSnapshot

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

    from sla_engine.domain.timeline import TicketSnapshot

# The consumer's whole store path in one statement (one round trip per batch, whatever its size): the inbox
# keeps the keys not seen before (`fresh`), their snapshots join the timelines in batch order (arrival is the
# tie-break of equal event times), and each touched ticket of a configured tenant is made due now, with a new
# `mark`. No ticket lock: a reconciliation that read the timeline before these snapshots sees the mark changed
# and leaves the ticket due (`_SAVE_TIMERS`), so the consumer never waits for the rounds. Rows are written in key
# order, the order every writer of timers locks in. The due mark keeps an earlier timer and the newest
# traceparent of the batch (the last event that has one).
_STORE_SNAPSHOTS = sa.text("""
WITH input AS (
    SELECT * FROM unnest(CAST(:tenants AS text[]), CAST(:sources AS text[]), CAST(:ids AS text[]),
                         CAST(:tickets AS text[]), CAST(:times AS timestamptz[]), CAST(:snapshots AS text[]),
                         CAST(:traceparents AS text[])) WITH ORDINALITY
        AS i(tenant_id, source, event_id, ticket_id, event_time, snapshot, traceparent, position)
), fresh AS (
    INSERT INTO inbox (consumer, tenant_id, source, event_id)
    SELECT CAST(:consumer AS text), tenant_id, source, event_id FROM input ORDER BY position
    ON CONFLICT DO NOTHING
    RETURNING tenant_id, source, event_id
), new AS (
    SELECT i.* FROM input AS i JOIN fresh AS f USING (tenant_id, source, event_id)
), stored AS (
    INSERT INTO ticket_events (tenant_id, ticket_id, source, event_id, event_time, snapshot)
    SELECT tenant_id, ticket_id, source, event_id, event_time, CAST(snapshot AS jsonb) FROM new ORDER BY position
    ON CONFLICT DO NOTHING
), touched AS (
    SELECT DISTINCT ON (tenant_id, ticket_id) tenant_id, ticket_id, traceparent, tenant_id || '/' || ticket_id AS k
    FROM new WHERE tenant_id IN (SELECT tenant_id FROM config_versions)
    ORDER BY tenant_id, ticket_id, traceparent IS NULL, position DESC
), due AS (
    INSERT INTO timers AS t (tenant_id, ticket_id, due_at, transition, traceparent)
    SELECT tenant_id, ticket_id, CAST(:now AS timestamptz), CAST(:reason AS text), traceparent
    FROM (SELECT * FROM touched ORDER BY k) AS ordered
    ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET
        due_at = least(t.due_at, excluded.due_at),
        transition = CASE WHEN excluded.due_at < t.due_at THEN excluded.transition ELSE t.transition END,
        traceparent = coalesce(excluded.traceparent, t.traceparent),
        mark = excluded.mark
    RETURNING t.tenant_id
)
SELECT f.tenant_id, f.source, f.event_id, (SELECT count(*) FROM due) AS due FROM fresh AS f
""")


# Due tickets for one round. The ranking is computed once (MATERIALIZED), then the tickets' advisory locks are
# tried one by one through LATERAL, in rank order, until `limit` are held: a plan stale statistics cannot spoil.
# The timer rows themselves are not locked, so the consumer marks tickets due meanwhile (their marks tell the
# round's save). A tenant whose tickets are expensive gets no more than a round can evaluate (`caps`): the
# round holds every ticket it takes until it commits. The earlier join of timers with its own ranking was
# planned, on statistics taken while the queue was empty, as a nested loop that ranked the whole queue again per


def _snapshot_data(snapshot: TicketSnapshot) -> dict[str, Any]:
    return {
        "action": snapshot.action,
        "kind": snapshot.kind,
        "status": snapshot.status,
        "priority": snapshot.priority,
        "service": snapshot.service,
        "customer": snapshot.customer,
        "assignment_group": snapshot.assignment_group,
        "assignee": snapshot.assignee,
        "attributes": dict(snapshot.attributes),
    }


class SqlTicketRepository:
    """The `ticket_events` table (with the inbox and due marks its store path writes), inside the caller's
    transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock_ticket(self, tenant_id: str, ticket_id: str) -> None:
        """Serialise the reconciliations of one ticket (reconcile rounds, replicas, recalculation) until the
        transaction ends. The consumer does not take it: it changes the timer's mark instead (`_STORE_SNAPSHOTS`)."""
        await self._session.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"{tenant_id}/{ticket_id}"}
        )

    async def add_snapshots(self, snapshots: Sequence[tuple[str, str, TicketSnapshot]]) -> None:
        """Store (tenant, source, snapshot) rows; an already stored (tenant, source, event id) is skipped."""
        if not snapshots:
            return
        rows = [
            {
                "tenant_id": tenant_id,
                "ticket_id": snapshot.ticket_id,
                "source": source,
                "event_id": snapshot.event_id,
                "event_time": snapshot.time,
                "snapshot": _snapshot_data(snapshot),
            }
            for tenant_id, source, snapshot in snapshots
        ]
        await self._session.execute(insert(tables.ticket_events).on_conflict_do_nothing(), rows)

    async def store_snapshots(
        self, consumer: str, snapshots: Sequence[StoredSnapshot], now: datetime
    ) -> tuple[set[tuple[str, str, str]], int]:
        """The consumer's batch in one statement (`_STORE_SNAPSHOTS`): inbox rows, snapshots, due marks.

        `snapshots` must have distinct (tenant, source, event id) keys. Returns the keys seen for the first
        time and how many tickets were made due.
        """
        if not snapshots:
            return set(), 0
        rows = (
            await self._session.execute(
                _STORE_SNAPSHOTS,
                {
                    "tenants": [s.tenant_id for s in snapshots],
                    "sources": [s.source for s in snapshots],
                    "ids": [s.event_id for s in snapshots],
                    "tickets": [s.ticket_id for s in snapshots],
                    "times": [s.event_time for s in snapshots],
                    "snapshots": [s.snapshot for s in snapshots],
                    "traceparents": [s.traceparent for s in snapshots],
                    "consumer": consumer,
                    "now": now,
                    "reason": EVENTS_DUE,
                },
            )
        ).all()
        return {(row.tenant_id, row.source, row.event_id) for row in rows}, int(rows[0].due) if rows else 0

    async def timeline(self, tenant_id: str, ticket_id: str) -> list[TicketSnapshot]:
        t = tables.ticket_events
        rows = await self._session.execute(
            sa.select(t)
            .where(t.c.tenant_id == tenant_id, t.c.ticket_id == ticket_id)
            .order_by(t.c.event_time, t.c.arrival)
        )
        return [snapshot_from_row(row) for row in rows]

    async def tickets(self, tenant_id: str, *, only_open: bool) -> list[str]:
        """Tickets with a pinned version; `only_open`: those with a clock still running or paused."""
        if only_open:
            c = tables.clocks
            statement = (
                sa.select(c.c.ticket_id)
                .where(c.c.tenant_id == tenant_id, c.c.state.in_(("running", "paused")))
                .distinct()
            )
        else:
            v = tables.ticket_versions
            statement = sa.select(v.c.ticket_id).where(v.c.tenant_id == tenant_id)
        return sorted(str(row[0]) for row in await self._session.execute(statement))

    async def tickets_active_between(self, tenant_id: str, start: datetime, end: datetime) -> list[str]:
        t = tables.ticket_events
        statement = (
            sa.select(t.c.ticket_id)
            .where(t.c.tenant_id == tenant_id, t.c.event_time >= start, t.c.event_time < end)
            .distinct()
        )
        return sorted(str(row[0]) for row in await self._session.execute(statement))
