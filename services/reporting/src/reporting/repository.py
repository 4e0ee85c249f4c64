"""Writes to reporting's read models and rollups; every function runs inside the caller's transaction.

Rollups are kept by deltas: when a cycle's outcome or a ticket's volume transitions change, the old
contribution is subtracted and the new one added, in the same transaction as the raw row, so the rollups
always equal the aggregate of the raw rows. Deltas of a batch are summed in `Deltas` and written once, in key
order, so concurrent replicas lock the shared rollup rows in the same order and never deadlock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from reporting import tables
from reporting.domain.outcomes import Contribution, arrived_out_of_order, contribution, wins
from reporting.domain.tickets import Snapshot, VolumeTransition, latest, volume_transitions
from slm_shared.events import (
    ClockTransitionData,
    CloudEvent,
    FeedbackData,
    SloAlertData,
    SloStatusData,
    TicketSnapshotData,
)

# Advisory lock namespace of a tenant's read models: event handlers share it, period close takes it alone.
TENANT_LOCK_CLASS = 7301


async def lock_tenant_shared(session: AsyncSession, tenant: str) -> None:
    await session.execute(sa.text("SELECT pg_advisory_xact_lock_shared(:c, hashtext(:t))"),
                          {"c": TENANT_LOCK_CLASS, "t": tenant})


async def lock_tenant_exclusive(session: AsyncSession, tenant: str) -> None:
    await session.execute(sa.text("SELECT pg_advisory_xact_lock(:c, hashtext(:t))"),
                          {"c": TENANT_LOCK_CLASS, "t": tenant})


@dataclass(frozen=True)
class Effect:
    """What applying one event changed: the instants whose period counts moved, and how it arrived."""

    changed_at: tuple[datetime, ...] = ()
    out_of_order: bool = False
    recalculation: bool = False


OUTCOME_DIMENSIONS = ("service", "customer", "agreement", "policy_id", "policy_version", "calendar", "metric",
                      "priority")


def _utc_day(instant: datetime) -> Any:
    return instant.astimezone(UTC).date()


@dataclass
class Deltas:
    """The rollup and counter changes of one batch, summed per key, written by `flush`."""

    clock_daily: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)
    ticket_daily: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)
    stats: dict[tuple[str, str, datetime], dict[str, Any]] = field(default_factory=dict)
    first_seen: dict[str, datetime] = field(default_factory=dict)
    late_changes: list[dict[str, Any]] = field(default_factory=list)

    def note_late_change(self, event: CloudEvent, periods: Iterable[datetime], received_at: datetime) -> None:
        """A late event that changed closed periods: one `late_changes` row per period, written by `flush`."""
        self.late_changes.extend(
            {"tenant_id": event.tenantid, "period_start": start, "event_type": event.type, "event_id": event.id,
             "subject": event.subject, "received_at": received_at} for start in periods)

    def add_clock(self, tenant: str, dims: dict[str, Any], part: Contribution, sign: int) -> None:
        key = (tenant, _utc_day(part.stopped_at), *(dims[d] for d in OUTCOME_DIMENSIONS))
        sums = self.clock_daily.setdefault(key, [0, 0, 0, 0])
        for index, value in enumerate((part.met, part.breached, part.elapsed_seconds, part.over_target_seconds)):
            sums[index] += sign * value

    def add_ticket(self, tenant: str, transition: VolumeTransition, count: int) -> None:
        key = (tenant, _utc_day(transition.at), transition.service, transition.customer, transition.priority)
        sums = self.ticket_daily.setdefault(key, [0, 0, 0, 0, 0])
        sums[TICKET_MEASURES.index(transition.kind)] += count
        sums[4] += count * transition.open_delta

    def count_event(self, event: CloudEvent, effect: Effect, after_close: bool, received_at: datetime) -> None:
        """The data notes' counters: events per type and UTC hour of event time, with their ranges."""
        key = (event.tenantid, event.type, hour_floor(event.time))
        found = self.stats.get(key)
        if found is None:
            self.stats[key] = found = {
                "events": 0, "first_event_time": event.time, "last_event_time": event.time,
                "first_received_at": received_at, "last_received_at": received_at, "out_of_order": 0,
                "after_close": 0, "recalculations": 0}
        found["events"] += 1
        found["first_event_time"] = min(found["first_event_time"], event.time)
        found["last_event_time"] = max(found["last_event_time"], event.time)
        found["first_received_at"] = min(found["first_received_at"], received_at)
        found["last_received_at"] = max(found["last_received_at"], received_at)
        found["out_of_order"] += int(effect.out_of_order)
        found["after_close"] += int(after_close)
        found["recalculations"] += int(effect.recalculation)
        seen = self.first_seen.get(event.tenantid)
        self.first_seen[event.tenantid] = event.time if seen is None else min(seen, event.time)


TICKET_MEASURES = ("created", "resolved", "reopened", "cancelled")
CLOCK_MEASURES = ("met", "breached", "elapsed_sum", "over_target_sum")


async def flush(session: AsyncSession, deltas: Deltas) -> None:
    """Write a batch's summed deltas in key order (the same lock order in every replica), and its late-change
    notes."""
    if deltas.late_changes:
        await session.execute(sa.insert(tables.late_changes), deltas.late_changes)
    if deltas.clock_daily:
        rows = [dict(zip(("tenant_id", "day", *OUTCOME_DIMENSIONS), key, strict=True))
                | dict(zip(("met", "breached", "elapsed_sum", "over_target_sum"), sums, strict=True))
                for key, sums in sorted(deltas.clock_daily.items()) if any(sums)]
        by_service: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in rows:
            key = tuple(v for k, v in row.items() if k not in ("customer", *CLOCK_MEASURES))
            found = by_service.setdefault(key, {k: v for k, v in row.items() if k != "customer"}
                                          | dict.fromkeys(CLOCK_MEASURES, 0))
            for measure in CLOCK_MEASURES:
                found[measure] += row[measure]
        for t, batch in ((tables.clock_daily, rows), (tables.clock_daily_service, list(by_service.values()))):
            if batch:
                statement = insert(t)
                await session.execute(statement.on_conflict_do_update(
                    index_elements=list(t.primary_key.columns),
                    set_={k: getattr(t.c, k) + statement.excluded[k] for k in CLOCK_MEASURES}), batch)
    if deltas.ticket_daily:
        t = tables.ticket_daily
        rows = [dict(zip(("tenant_id", "day", "service", "customer", "priority"), key, strict=True))
                | dict(zip((*TICKET_MEASURES, "open_delta"), sums, strict=True))
                for key, sums in sorted(deltas.ticket_daily.items()) if any(sums)]
        if rows:
            statement = insert(t)
            await session.execute(statement.on_conflict_do_update(
                index_elements=list(t.primary_key.columns),
                set_={k: getattr(t.c, k) + statement.excluded[k] for k in (*TICKET_MEASURES, "open_delta")}), rows)
    if deltas.stats:
        s = tables.event_stats
        statement = insert(s)
        x = statement.excluded
        await session.execute(statement.on_conflict_do_update(
            index_elements=["tenant_id", "event_type", "hour"],
            set_={"events": s.c.events + x.events,
                  "first_event_time": sa.func.least(s.c.first_event_time, x.first_event_time),
                  "last_event_time": sa.func.greatest(s.c.last_event_time, x.last_event_time),
                  "first_received_at": sa.func.least(s.c.first_received_at, x.first_received_at),
                  "last_received_at": sa.func.greatest(s.c.last_received_at, x.last_received_at),
                  "out_of_order": s.c.out_of_order + x.out_of_order, "after_close": s.c.after_close + x.after_close,
                  "recalculations": s.c.recalculations + x.recalculations}),
            [{"tenant_id": k[0], "event_type": k[1], "hour": k[2], **v} for k, v in sorted(deltas.stats.items())])
    if deltas.first_seen:
        seen = insert(tables.tenants_seen)
        await session.execute(seen.on_conflict_do_update(
            index_elements=["tenant_id"], set_={"first_event_time": seen.excluded.first_event_time},
            where=seen.excluded.first_event_time < tables.tenants_seen.c.first_event_time),
            [{"tenant_id": k, "first_event_time": v} for k, v in sorted(deltas.first_seen.items())])


async def apply_clocks(session: AsyncSession, deltas: Deltas,
                       items: Sequence[tuple[CloudEvent, ClockTransitionData]]) -> list[Effect]:
    """Upsert each cycle to the event that wins it (`outcomes.wins`), and move its rollup contribution accordingly.

    The batch's cycles are read (locked) in one statement and written in one; in between, each event is judged,
    in order, against the cycle as the events before it left it, so the effects are those of one-at-a-time.
    """
    if not items:
        return []
    t = tables.clock_outcomes
    key_columns = ("tenant_id", "ticket_id", "policy_id", "metric", "cycle")
    keys = sorted({(event.tenantid, data.ticket_id, data.policy_id, data.metric, data.cycle) for event, data in items})
    current: dict[tuple[Any, ...], dict[str, Any]] = {
        tuple(row[k] for k in key_columns): dict(row) for row in (await session.execute(
            sa.select(t).where(sa.tuple_(*(t.c[k] for k in key_columns)).in_(keys))
            .order_by(*(t.c[k] for k in key_columns)).with_for_update())).mappings()}
    changed_rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    effects = []
    for event, data in items:
        key = (event.tenantid, data.ticket_id, data.policy_id, data.metric, data.cycle)
        found = current.get(key)
        effects.append(_clock_effect(deltas, event, data, key, found, current, changed_rows))
    if changed_rows:
        statement = insert(t)
        columns = [k for k in next(iter(changed_rows.values())) if k not in key_columns]
        await session.execute(statement.on_conflict_do_update(
            index_elements=list(key_columns),
            set_={**{k: statement.excluded[k] for k in columns}, "updated_at": sa.func.now()}),
            [changed_rows[key] for key in sorted(changed_rows)])
    return effects


def _clock_effect(deltas: Deltas, event: CloudEvent, data: ClockTransitionData, key: tuple[Any, ...],
                  found: dict[str, Any] | None, current: dict[tuple[Any, ...], dict[str, Any]],
                  changed_rows: dict[tuple[Any, ...], dict[str, Any]]) -> Effect:
    current_time, current_sequence = (found["last_event_time"], found["last_sequence"]) if found else (None, None)
    out_of_order = arrived_out_of_order(event.time, current_time, new_sequence=data.sequence,
                                        current_sequence=current_sequence)
    if not wins(event.time, data.transition, current_time, new_sequence=data.sequence,
                current_sequence=current_sequence):
        return Effect(out_of_order=True)
    values = {
        "tenant_id": key[0], "ticket_id": key[1], "policy_id": key[2], "metric": key[3], "cycle": key[4],
        "agreement": data.agreement, "policy_version": data.policy_version, "state": data.state,
        "breached": data.breached, "service": data.service, "customer": data.customer, "priority": data.priority,
        "kind": data.kind, "calendar": data.calendar, "target_seconds": data.target_seconds,
        "elapsed_seconds": data.elapsed_seconds, "started_at": data.started_at, "due_at": data.due_at,
        "breached_at": data.breached_at, "stopped_at": data.stopped_at, "last_transition": data.transition,
        "last_event_time": event.time, "last_event_id": event.id, "last_sequence": data.sequence,
        "recalculations": (found["recalculations"] if found else 0) + (data.transition == "recalculated"),
    }
    current[key] = changed_rows[key] = values
    old = _contribution_of(found) if found else None
    new = contribution(data.state, data.stopped_at, data.elapsed_seconds, data.target_seconds)
    old_dims = {k: found[k] for k in OUTCOME_DIMENSIONS} if found else None
    new_dims = {k: values[k] for k in OUTCOME_DIMENSIONS}
    changed: list[datetime] = []
    if (old, old_dims if old else None) != (new, new_dims if new else None):
        if old is not None and old_dims is not None:
            deltas.add_clock(event.tenantid, old_dims, old, -1)
            changed.append(old.stopped_at)
        if new is not None:
            deltas.add_clock(event.tenantid, new_dims, new, 1)
            changed.append(new.stopped_at)
    elif found is not None and _listed_fields(found) != _listed_fields(values):
        # Not in the counts, but in the lists (open breaches): a change all the same.
        changed.append(event.time)
    return Effect(tuple(changed), out_of_order, data.transition == "recalculated")


def _contribution_of(row: Any) -> Contribution | None:
    return contribution(row["state"], row["stopped_at"], row["elapsed_seconds"], row["target_seconds"])


def _listed_fields(row: Any) -> tuple[Any, ...]:
    return (row["state"], row["breached"], row["breached_at"], row["stopped_at"])


async def apply_tickets(session: AsyncSession, deltas: Deltas,
                        items: Sequence[tuple[CloudEvent, TicketSnapshotData]]) -> list[Effect]:
    """Add snapshots to their tickets' timelines, re-derive the volume transitions and move the rollup.

    One statement per table for the whole batch; the effect of each event (and so the rollup) is exactly what
    applying the events one at a time, in this order, gives: each is judged against its ticket's timeline up
    to its own row.
    """
    if not items:
        return []
    e, tr, f = tables.ticket_events, tables.ticket_transitions, tables.feedback
    sequences = (await session.execute(
        sa.insert(e).returning(e.c.sequence, sort_by_parameter_order=True),
        [{"tenant_id": event.tenantid, "ticket_id": data.ticket_id, "event_time": event.time, "event_id": event.id,
          "action": data.action, "status": data.status, "priority": data.priority, "service": data.service,
          "customer": data.customer, "kind": data.kind} for event, data in items],
    )).scalars().all()
    tickets = sorted({(event.tenantid, data.ticket_id) for event, data in items})
    timelines: dict[tuple[str, str], list[tuple[int, Snapshot]]] = {ticket: [] for ticket in tickets}
    for r in (await session.execute(
        sa.select(e).where(sa.tuple_(e.c.tenant_id, e.c.ticket_id).in_(tickets))
        .order_by(e.c.tenant_id, e.c.ticket_id, e.c.event_time, e.c.sequence)
    )).mappings():
        timelines[(r["tenant_id"], r["ticket_id"])].append((r["sequence"], Snapshot(
            r["event_time"], r["sequence"], r["event_id"], r["action"], r["status"], r["priority"], r["service"],
            r["customer"], r["kind"])))
    current: dict[tuple[str, str], list[VolumeTransition]] = {ticket: [] for ticket in tickets}
    for r in (await session.execute(
        sa.delete(tr).where(sa.tuple_(tr.c.tenant_id, tr.c.ticket_id).in_(tickets)).returning(tr)
    )).mappings():
        current[(r["tenant_id"], r["ticket_id"])].append(VolumeTransition(
            r["at"], r["kind"], r["open_delta"], r["priority"], r["service"], r["customer"], r["ticket_kind"]))
    effects = []
    for (event, data), sequence in zip(items, sequences, strict=True):
        ticket = (event.tenantid, data.ticket_id)
        timeline = [snapshot for seq, snapshot in timelines[ticket] if seq <= sequence]
        new = volume_transitions(timeline)
        removed = Counter(current[ticket]) - Counter(new)
        added = Counter(new) - Counter(current[ticket])
        for transition, count in removed.items():
            deltas.add_ticket(event.tenantid, transition, -count)
        for transition, count in added.items():
            deltas.add_ticket(event.tenantid, transition, count)
        current[ticket] = new
        effects.append(Effect(tuple(sorted({v.at for v in (*removed, *added)})),
                              any(s.at > event.time for s in timeline)))
    rows = [{"tenant_id": tenant, "ticket_id": ticket, "position": i, "at": v.at, "kind": v.kind,
             "open_delta": v.open_delta, "priority": v.priority, "service": v.service, "customer": v.customer,
             "ticket_kind": v.ticket_kind} for (tenant, ticket), new in current.items() for i, v in enumerate(new)]
    if rows:
        await session.execute(sa.insert(tr), rows)
    heads = {ticket: (snapshots[0][1].at, latest([s for _, s in snapshots])) for ticket, snapshots in timelines.items()}
    # The assignment group is not in the timeline rows: it comes from the batch when the head is one of its events,
    # else the stored one (set when that head arrived) stays.
    groups = {event.id: data.assignment_group for event, data in items}
    facts = [{"tenant_id": tenant, "ticket_id": ticket, "created_at": created, "status": head.status,
              "priority": head.priority, "service": head.service, "customer": head.customer, "kind": head.kind,
              "last_event_time": head.at, "assignment_group": groups.get(head.event_id)}
             for (tenant, ticket), (created, head) in heads.items()]
    statement = insert(tables.ticket_facts)
    t = tables.ticket_facts
    await session.execute(statement.on_conflict_do_update(
        index_elements=["tenant_id", "ticket_id"],
        set_={**{k: statement.excluded[k] for k in facts[0] if k not in ("tenant_id", "ticket_id", "assignment_group")},
              "assignment_group": sa.case((statement.excluded.last_event_time != t.c.last_event_time,
                                           statement.excluded.assignment_group),
                                          else_=sa.func.coalesce(statement.excluded.assignment_group,
                                                                 t.c.assignment_group))}), facts)
    # A survey answer takes its customer from the ticket: follow a changed customer.
    await session.execute(
        sa.update(f).where(f.c.tenant_id == sa.bindparam("b_tenant"), f.c.ticket_id == sa.bindparam("b_ticket"),
                           f.c.customer.is_distinct_from(sa.bindparam("b_customer")))
        .values(customer=sa.bindparam("b_customer")),
        [{"b_tenant": tenant, "b_ticket": ticket, "b_customer": head.customer}
         for (tenant, ticket), (_, head) in heads.items()])
    return effects


async def apply_feedback(session: AsyncSession, deltas: Deltas, event: CloudEvent, data: FeedbackData) -> Effect:
    facts = tables.ticket_facts
    customer = (await session.execute(sa.select(facts.c.customer).where(
        facts.c.tenant_id == event.tenantid, facts.c.ticket_id == data.ticket_id))).scalar()
    await session.execute(insert(tables.feedback).values(
        tenant_id=event.tenantid, source=event.source, event_id=event.id, ticket_id=data.ticket_id,
        service=data.service, customer=customer, score=data.score, scale=data.scale, comment=data.comment,
        answered_at=event.time).on_conflict_do_nothing())
    return Effect((event.time,))


async def apply_slo_status(session: AsyncSession, deltas: Deltas, event: CloudEvent, data: SloStatusData) -> Effect:
    """One row per evaluation instant; a re-emitted evaluation replaces the earlier one."""
    values = {"tenant_id": event.tenantid, "slo_id": data.slo_id, "evaluated_at": event.time,
              "service": data.service, "window_start": data.window_start, "window_end": data.window_end,
              "sli_value": data.sli_value, "objective": data.objective, "good": data.good, "total": data.total,
              "error_budget_total": data.error_budget_total, "error_budget_remaining": data.error_budget_remaining,
              "burn_rates": data.burn_rates, "event_id": event.id}
    statement = insert(tables.slo_status).values(**values)
    await session.execute(statement.on_conflict_do_update(
        index_elements=["tenant_id", "slo_id", "evaluated_at"],
        set_={k: statement.excluded[k] for k in values if k not in ("tenant_id", "slo_id", "evaluated_at")}))
    return Effect((event.time,))


async def apply_slo_alert(session: AsyncSession, deltas: Deltas, event: CloudEvent, data: SloAlertData) -> Effect:
    await session.execute(insert(tables.slo_alerts).values(
        tenant_id=event.tenantid, source=event.source, event_id=event.id, slo_id=data.slo_id,
        service=event.subject, alert=data.alert, state=data.state, burn_rate=data.burn_rate,
        windows=data.windows, at=event.time).on_conflict_do_nothing())
    return Effect((event.time,))


async def closed_periods(session: AsyncSession, tenant: str) -> list[tuple[datetime, datetime]]:
    """The tenant's closed periods; stable while the caller holds the tenant's shared lock."""
    p = tables.period_closes
    rows = (await session.execute(sa.select(p.c.period_start, p.c.period_end).where(p.c.tenant_id == tenant))).all()
    return [(start, end) for start, end in rows]


def periods_holding(closed: Sequence[tuple[datetime, datetime]], instants: Sequence[datetime]) -> list[datetime]:
    return sorted({start for start, end in closed if any(start <= i < end for i in instants)})


def hour_floor(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
