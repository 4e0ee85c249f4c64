"""Reporting's read models and rollups in PostgreSQL: the rows the read-model handler loads and writes.

Every method runs inside the unit of work's transaction and never commits; what the rows become is decided in
reporting.domain.rollups.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from reporting import tables
from reporting.domain.rollups import (
    CLOCK_MEASURES,
    CYCLE_KEY,
    OUTCOME_DIMENSIONS,
    TICKET_MEASURES,
    CycleKey,
    Deltas,
    TicketKey,
)
from reporting.domain.tickets import Snapshot, VolumeTransition

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

    from slm_shared.events import (
        CalendarData,
        CloudEvent,
        FeedbackData,
        SloAlertData,
        SloStatusData,
        TicketSnapshotData,
    )

# Advisory lock namespace of a tenant's read models: event handlers share it, period close takes it alone.
TENANT_LOCK_CLASS = 7301
# Advisory lock namespace of one ticket (`<tenant>/<ticket>`): its snapshots and its feedback, which arrive on
# different topics and so may be applied by different replicas at once.
TICKET_LOCK_CLASS = 7302


class SqlReadModelRepository:
    """The raw read-model rows (tickets, clock cycles, feedback, SLO statuses and alerts, calendars) and the
    rollups."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock_tenant_shared(self, tenant: str) -> None:
        await self._session.execute(
            sa.text("SELECT pg_advisory_xact_lock_shared(:c, hashtext(:t))"), {"c": TENANT_LOCK_CLASS, "t": tenant}
        )

    async def lock_tenant_exclusive(self, tenant: str) -> None:
        await self._session.execute(
            sa.text("SELECT pg_advisory_xact_lock(:c, hashtext(:t))"), {"c": TENANT_LOCK_CLASS, "t": tenant}
        )

    async def lock_tickets(self, tickets: Sequence[TicketKey]) -> None:
        """Each ticket's lock until the transaction ends, taken in hash order (one order for every replica, so two
        batches never wait on each other in a circle), in one statement."""
        if not tickets:
            return
        # A volatile function in the select list runs after ORDER BY (PostgreSQL >= 9.6): the locks come in order.
        await self._session.execute(
            sa.text(
                "SELECT pg_advisory_xact_lock(:c, h) FROM "
                "(SELECT DISTINCT hashtext(k) AS h FROM unnest(CAST(:keys AS text[])) AS k) AS hashed ORDER BY h"
            ),
            {"c": TICKET_LOCK_CLASS, "keys": [f"{tenant}/{ticket}" for tenant, ticket in tickets]},
        )

    async def closed_periods(self, tenant: str) -> list[tuple[datetime, datetime]]:
        """The tenant's closed periods; stable while the caller holds the tenant's shared lock."""
        p = tables.period_closes
        rows = (
            await self._session.execute(sa.select(p.c.period_start, p.c.period_end).where(p.c.tenant_id == tenant))
        ).all()
        return [(start, end) for start, end in rows]

    async def lock_cycles(self, keys: Sequence[CycleKey]) -> dict[CycleKey, dict[str, Any]]:
        """The stored rows of these clock cycles, locked (in key order) until the transaction ends."""
        if not keys:
            return {}
        t = tables.clock_outcomes
        columns = [t.c[k] for k in CYCLE_KEY]
        rows = (
            await self._session.execute(
                sa.select(t).where(sa.tuple_(*columns).in_(sorted(keys))).order_by(*columns).with_for_update()
            )
        ).mappings()
        found: dict[CycleKey, dict[str, Any]] = {}
        for row in rows:
            found[(row["tenant_id"], row["ticket_id"], row["policy_id"], row["metric"], row["cycle"])] = dict(row)
        return found

    async def save_cycles(self, rows: dict[CycleKey, dict[str, Any]]) -> None:
        """Upsert the cycles' new rows in one statement, in key order."""
        if not rows:
            return
        t = tables.clock_outcomes
        statement = insert(t)
        columns = [k for k in next(iter(rows.values())) if k not in CYCLE_KEY]
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=list(CYCLE_KEY),
                set_={**{k: statement.excluded[k] for k in columns}, "updated_at": sa.func.now()},
            ),
            [rows[key] for key in sorted(rows)],
        )

    async def add_snapshots(self, items: Sequence[tuple[CloudEvent, TicketSnapshotData]]) -> list[int]:
        """Add ticket snapshots to their timelines, in one statement; their sequence numbers, in order."""
        e = tables.ticket_events
        return list(
            (
                await self._session.execute(
                    sa.insert(e).returning(e.c.sequence, sort_by_parameter_order=True),
                    [
                        {
                            "tenant_id": event.tenantid,
                            "ticket_id": data.ticket_id,
                            "event_time": event.time,
                            "event_id": event.id,
                            "action": data.action,
                            "status": data.status,
                            "priority": data.priority,
                            "service": data.service,
                            "customer": data.customer,
                            "kind": data.kind,
                        }
                        for event, data in items
                    ],
                )
            )
            .scalars()
            .all()
        )

    async def timelines(self, tickets: Sequence[TicketKey]) -> dict[TicketKey, list[tuple[int, Snapshot]]]:
        """Each ticket's snapshots with their sequence numbers, in timeline order."""
        e = tables.ticket_events
        found: dict[TicketKey, list[tuple[int, Snapshot]]] = {ticket: [] for ticket in tickets}
        for r in (
            await self._session.execute(
                sa.select(e)
                .where(sa.tuple_(e.c.tenant_id, e.c.ticket_id).in_(tickets))
                .order_by(e.c.tenant_id, e.c.ticket_id, e.c.event_time, e.c.sequence)
            )
        ).mappings():
            found[(r["tenant_id"], r["ticket_id"])].append(
                (
                    r["sequence"],
                    Snapshot(
                        r["event_time"],
                        r["sequence"],
                        r["event_id"],
                        r["action"],
                        r["status"],
                        r["priority"],
                        r["service"],
                        r["customer"],
                        r["kind"],
                    ),
                )
            )
        return found

    async def take_transitions(self, tickets: Sequence[TicketKey]) -> dict[TicketKey, list[VolumeTransition]]:
        """The tickets' stored volume transitions, deleted (`store_transitions` writes their new ones)."""
        tr = tables.ticket_transitions
        found: dict[TicketKey, list[VolumeTransition]] = {ticket: [] for ticket in tickets}
        for r in (
            await self._session.execute(
                sa.delete(tr).where(sa.tuple_(tr.c.tenant_id, tr.c.ticket_id).in_(tickets)).returning(tr)
            )
        ).mappings():
            found[(r["tenant_id"], r["ticket_id"])].append(
                VolumeTransition(
                    r["at"], r["kind"], r["open_delta"], r["priority"], r["service"], r["customer"], r["ticket_kind"]
                )
            )
        return found

    async def store_transitions(self, transitions: dict[TicketKey, list[VolumeTransition]]) -> None:
        rows = [
            {
                "tenant_id": tenant,
                "ticket_id": ticket,
                "position": i,
                "at": v.at,
                "kind": v.kind,
                "open_delta": v.open_delta,
                "priority": v.priority,
                "service": v.service,
                "customer": v.customer,
                "ticket_kind": v.ticket_kind,
            }
            for (tenant, ticket), new in transitions.items()
            for i, v in enumerate(new)
        ]
        if rows:
            await self._session.execute(sa.insert(tables.ticket_transitions), rows)

    async def store_heads(
        self, heads: dict[TicketKey, tuple[datetime, Snapshot]], groups: dict[str, str | None]
    ) -> None:
        """The tickets' current facts, and their survey answers following a changed customer. The assignment
        group is not in the timeline rows: it comes from `groups` (by event id) when the head is one of the
        batch's events, else the stored one (set when that head arrived) stays."""
        if not heads:
            return
        facts = [
            {
                "tenant_id": tenant,
                "ticket_id": ticket,
                "created_at": created,
                "status": head.status,
                "priority": head.priority,
                "service": head.service,
                "customer": head.customer,
                "kind": head.kind,
                "last_event_time": head.at,
                "assignment_group": groups.get(head.event_id),
            }
            for (tenant, ticket), (created, head) in heads.items()
        ]
        t = tables.ticket_facts
        statement = insert(t)
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=["tenant_id", "ticket_id"],
                set_={
                    **{
                        k: statement.excluded[k]
                        for k in facts[0]
                        if k not in ("tenant_id", "ticket_id", "assignment_group")
                    },
                    "assignment_group": sa.case(
                        (
                            statement.excluded.last_event_time != t.c.last_event_time,
                            statement.excluded.assignment_group,
                        ),
                        else_=sa.func.coalesce(statement.excluded.assignment_group, t.c.assignment_group),
                    ),
                },
            ),
            facts,
        )
        f = tables.feedback
        await self._session.execute(
            sa.update(f)
            .where(
                f.c.tenant_id == sa.bindparam("b_tenant"),
                f.c.ticket_id == sa.bindparam("b_ticket"),
                f.c.customer.is_distinct_from(sa.bindparam("b_customer")),
            )
            .values(customer=sa.bindparam("b_customer")),
            [
                {"b_tenant": tenant, "b_ticket": ticket, "b_customer": head.customer}
                for (tenant, ticket), (_, head) in heads.items()
            ],
        )

    async def add_feedback(self, event: CloudEvent, data: FeedbackData) -> None:
        """A survey answer, with its customer taken from the ticket; a redelivered one is kept once."""
        facts = tables.ticket_facts
        customer = (
            await self._session.execute(
                sa.select(facts.c.customer).where(
                    facts.c.tenant_id == event.tenantid, facts.c.ticket_id == data.ticket_id
                )
            )
        ).scalar()
        await self._session.execute(
            insert(tables.feedback)
            .values(
                tenant_id=event.tenantid,
                source=event.source,
                event_id=event.id,
                ticket_id=data.ticket_id,
                service=data.service,
                customer=customer,
                score=data.score,
                scale=data.scale,
                comment=data.comment,
                answered_at=event.time,
            )
            .on_conflict_do_nothing()
        )

    async def add_slo_status(self, event: CloudEvent, data: SloStatusData) -> None:
        """One row per evaluation instant; a re-emitted evaluation replaces the earlier one."""
        values = {
            "tenant_id": event.tenantid,
            "slo_id": data.slo_id,
            "evaluated_at": event.time,
            "service": data.service,
            "window_start": data.window_start,
            "window_end": data.window_end,
            "sli_value": data.sli_value,
            "objective": data.objective,
            "good": data.good,
            "total": data.total,
            "error_budget_total": data.error_budget_total,
            "error_budget_remaining": data.error_budget_remaining,
            "burn_rates": data.burn_rates,
            "event_id": event.id,
        }
        statement = insert(tables.slo_status).values(**values)
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=["tenant_id", "slo_id", "evaluated_at"],
                set_={k: statement.excluded[k] for k in values if k not in ("tenant_id", "slo_id", "evaluated_at")},
            )
        )

    async def add_slo_alert(self, event: CloudEvent, data: SloAlertData) -> None:
        await self._session.execute(
            insert(tables.slo_alerts)
            .values(
                tenant_id=event.tenantid,
                source=event.source,
                event_id=event.id,
                slo_id=data.slo_id,
                service=event.subject,
                alert=data.alert,
                state=data.state,
                burn_rate=data.burn_rate,
                windows=data.windows,
                at=event.time,
            )
            .on_conflict_do_nothing()
        )

    async def store_calendars(self, announced: Sequence[tuple[str, str, CalendarData]], received_at: datetime) -> None:
        """Upsert (tenant, event id, definition) rows; the same calendar and version announced again replaces its
        row (an apply rolled back and redone takes the same version number for another text)."""
        if not announced:
            return
        c = tables.calendars
        # One row per key and statement (ON CONFLICT refuses to touch a row twice): the last announcement wins.
        rows = {
            (tenant, data.calendar_id, data.bundle_version): {
                "tenant_id": tenant,
                "calendar_id": data.calendar_id,
                "bundle_version": data.bundle_version,
                "definition": data.model_dump(mode="json"),
                "event_id": event_id,
                "received_at": received_at,
            }
            for tenant, event_id, data in announced
        }
        statement = insert(c).values(list(rows.values()))
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=[c.c.tenant_id, c.c.calendar_id, c.c.bundle_version],
                set_={
                    "definition": statement.excluded.definition,
                    "event_id": statement.excluded.event_id,
                    "received_at": statement.excluded.received_at,
                },
            )
        )

    async def flush(self, deltas: Deltas) -> None:
        """Write a batch's summed deltas in key order (the same lock order in every replica), and its late-change
        notes."""
        if deltas.late_changes:
            await self._session.execute(sa.insert(tables.late_changes), deltas.late_changes)
        if deltas.clock_daily:
            rows = [
                dict(zip(("tenant_id", "day", *OUTCOME_DIMENSIONS), key, strict=True))
                | dict(zip(("met", "breached", "elapsed_sum", "over_target_sum"), sums, strict=True))
                for key, sums in sorted(deltas.clock_daily.items())
                if any(sums)
            ]
            by_service: dict[tuple[Any, ...], dict[str, Any]] = {}
            for row in rows:
                key = tuple(v for k, v in row.items() if k not in ("customer", *CLOCK_MEASURES))
                found = by_service.setdefault(
                    key, {k: v for k, v in row.items() if k != "customer"} | dict.fromkeys(CLOCK_MEASURES, 0)
                )
                for measure in CLOCK_MEASURES:
                    found[measure] += row[measure]
            for t, batch in ((tables.clock_daily, rows), (tables.clock_daily_service, list(by_service.values()))):
                if batch:
                    statement = insert(t)
                    await self._session.execute(
                        statement.on_conflict_do_update(
                            index_elements=list(t.primary_key.columns),
                            set_={k: getattr(t.c, k) + statement.excluded[k] for k in CLOCK_MEASURES},
                        ),
                        batch,
                    )
        if deltas.ticket_daily:
            t = tables.ticket_daily
            rows = [
                dict(zip(("tenant_id", "day", "service", "customer", "priority"), key, strict=True))
                | dict(zip((*TICKET_MEASURES, "open_delta"), sums, strict=True))
                for key, sums in sorted(deltas.ticket_daily.items())
                if any(sums)
            ]
            if rows:
                statement = insert(t)
                await self._session.execute(
                    statement.on_conflict_do_update(
                        index_elements=list(t.primary_key.columns),
                        set_={k: getattr(t.c, k) + statement.excluded[k] for k in (*TICKET_MEASURES, "open_delta")},
                    ),
                    rows,
                )
        if deltas.stats:
            s = tables.event_stats
            statement = insert(s)
            x = statement.excluded
            await self._session.execute(
                statement.on_conflict_do_update(
                    index_elements=["tenant_id", "event_type", "hour"],
                    set_={
                        "events": s.c.events + x.events,
                        "first_event_time": sa.func.least(s.c.first_event_time, x.first_event_time),
                        "last_event_time": sa.func.greatest(s.c.last_event_time, x.last_event_time),
                        "first_received_at": sa.func.least(s.c.first_received_at, x.first_received_at),
                        "last_received_at": sa.func.greatest(s.c.last_received_at, x.last_received_at),
                        "out_of_order": s.c.out_of_order + x.out_of_order,
                        "after_close": s.c.after_close + x.after_close,
                        "recalculations": s.c.recalculations + x.recalculations,
                    },
                ),
                [{"tenant_id": k[0], "event_type": k[1], "hour": k[2], **v} for k, v in sorted(deltas.stats.items())],
            )
        if deltas.first_seen:
            seen = insert(tables.tenants_seen)
            await self._session.execute(
                seen.on_conflict_do_update(
                    index_elements=["tenant_id"],
                    set_={"first_event_time": seen.excluded.first_event_time},
                    where=seen.excluded.first_event_time < tables.tenants_seen.c.first_event_time,
                ),
                [{"tenant_id": k, "first_event_time": v} for k, v in sorted(deltas.first_seen.items())],
            )
