"""The sla-engine's persistence port and its PostgreSQL adapter. Repositories never commit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession

from sla_engine import tables
from sla_engine.domain.clocks import TransitionKey, transition_key
from sla_engine.domain.timeline import TicketSnapshot
from sla_engine.reconciliation import Reconciliation, TicketState
from sla_engine.timeline_cache import TimelineCache


@dataclass(frozen=True)
class ConfigVersion:
    tenant_id: str
    version: int
    bundle: dict[str, Any]
    source_text: str
    created_at: datetime


@dataclass(frozen=True)
class BundleSource:
    """A configuration version as parsing it needs it: its identity and source text. The stored JSONB form is
    not read: decoding it costs as much CPU as parsing, on the event loop, for every row that selects it."""

    tenant_id: str
    version: int
    source_text: str


VersionKey = tuple[str, int]  # tenant, configuration version

# The timer reason of a ticket made due by new snapshots (the others name the clock transition coming due).
EVENTS_DUE = "events"


@dataclass(frozen=True)
class StoredSnapshot:
    """One consumed snapshot as the store path writes it: `snapshot` is the stored JSON text of its data."""

    tenant_id: str
    source: str
    event_id: str
    ticket_id: str
    event_time: datetime
    snapshot: str
    traceparent: str | None = None


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
# due row (2.3 s for 1,500 due tickets, not 3 ms).
DUE_TICKETS = sa.text("""
WITH caps AS (
    SELECT * FROM unnest(CAST(:cap_tenants AS text[]), CAST(:cap_counts AS int[])) AS c(tenant_id, cap)
), ranked AS MATERIALIZED (
    SELECT tenant_id, ticket_id, due_at, row_number() OVER (PARTITION BY tenant_id ORDER BY due_at) AS turn
    FROM timers
    WHERE due_at <= :now AND (CAST(:parts AS int) = 1
        OR (hashtext(tenant_id || '/' || ticket_id) % :parts + :parts) % :parts = :part)
), chosen AS MATERIALIZED (
    SELECT r.tenant_id, r.ticket_id, r.turn, r.due_at
    FROM ranked AS r LEFT JOIN caps AS c USING (tenant_id)
    WHERE r.turn <= coalesce(c.cap, CAST(:per_tenant AS int))
    ORDER BY r.turn, r.due_at
    LIMIT :candidates
)
SELECT t.tenant_id, t.ticket_id, t.due_at, t.transition, t.traceparent
FROM chosen AS c CROSS JOIN LATERAL (
    SELECT * FROM timers AS t
    WHERE t.tenant_id = c.tenant_id AND t.ticket_id = c.ticket_id AND t.due_at <= :now
    OFFSET 0  -- a fence: the lock below is tried only for rows still due
) AS t
WHERE pg_try_advisory_xact_lock(hashtextextended(t.tenant_id || '/' || t.ticket_id, 0))
LIMIT :limit
""")

# A reconciliation's timers: only rows that still bear the mark read before the timeline (`TIMER_MARKS`) are
# moved or cleared, and only if no one holds them (a held row is the consumer making the ticket due again);
# a ticket that had no row gets one unless the consumer has just made one. Rows are taken in key order, through
# LATERAL (a plan statistics cannot spoil), and never waited for, so the save cannot deadlock with the consumer.
_SAVE_TIMERS = sa.text("""
WITH plan AS (
    SELECT * FROM unnest(CAST(:tenants AS text[]), CAST(:tickets AS text[]), CAST(:marks AS bigint[]),
                         CAST(:dues AS timestamptz[]), CAST(:transitions AS text[]))
        AS p(tenant_id, ticket_id, mark, due_at, transition)
), mine AS (
    SELECT t.tenant_id, t.ticket_id, p.due_at, p.transition
    FROM (SELECT * FROM plan WHERE mark IS NOT NULL ORDER BY tenant_id || '/' || ticket_id) AS p
    CROSS JOIN LATERAL (
        SELECT tenant_id, ticket_id FROM timers AS t
        WHERE t.tenant_id = p.tenant_id AND t.ticket_id = p.ticket_id AND t.mark = p.mark
        FOR UPDATE SKIP LOCKED
    ) AS t
), cleared AS (
    DELETE FROM timers AS t USING mine AS m
    WHERE t.tenant_id = m.tenant_id AND t.ticket_id = m.ticket_id AND m.due_at IS NULL
), moved AS (
    UPDATE timers AS t SET due_at = m.due_at, transition = m.transition, traceparent = NULL,
                           mark = nextval('timer_marks')
    FROM mine AS m
    WHERE t.tenant_id = m.tenant_id AND t.ticket_id = m.ticket_id AND m.due_at IS NOT NULL
)
INSERT INTO timers (tenant_id, ticket_id, due_at, transition)
SELECT tenant_id, ticket_id, due_at, transition FROM plan
WHERE mark IS NULL AND due_at IS NOT NULL
ORDER BY tenant_id || '/' || ticket_id
ON CONFLICT (tenant_id, ticket_id) DO NOTHING
""")


@dataclass(frozen=True)
class DueTimer:
    tenant_id: str
    ticket_id: str
    due_at: datetime
    reason: str = EVENTS_DUE
    traceparent: str | None = None


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


def _snapshot_data(snapshot: TicketSnapshot) -> dict[str, Any]:
    return {
        "action": snapshot.action, "kind": snapshot.kind, "status": snapshot.status, "priority": snapshot.priority,
        "service": snapshot.service, "customer": snapshot.customer, "assignment_group": snapshot.assignment_group,
        "assignee": snapshot.assignee, "attributes": dict(snapshot.attributes),
    }


def _in_pairs(table: sa.Table, pairs: Sequence[tuple[str, str]]) -> sa.ColumnElement[bool]:
    """(tenant, ticket) among `pairs`, as two arrays unnested: one statement text whatever their number, so the
    driver's prepared-statement cache serves it. An `IN` list of N pairs is a new statement (parsed and planned
    again) for every N, and the reconcile loop's rounds vary in size."""
    tenants = sa.bindparam(None, [tenant for tenant, _ in pairs], type_=ARRAY(sa.Text))
    tickets = sa.bindparam(None, [ticket for _, ticket in pairs], type_=ARRAY(sa.Text))
    wanted = sa.func.unnest(tenants, tickets).table_valued("tenant_id", "ticket_id").render_derived()
    return sa.tuple_(table.c.tenant_id, table.c.ticket_id).in_(sa.select(wanted.c.tenant_id, wanted.c.ticket_id))


class SqlSlaRepository:
    """The clock side's storage on the service's own PostgreSQL database, inside the caller's transaction.

    With a `TimelineCache` (one per database, kept by the caller across transactions), `load_states` decodes
    only the timeline rows it has not decoded before.
    """

    def __init__(self, session: AsyncSession, timelines: TimelineCache | None = None) -> None:
        self._session = session
        self._timelines = timelines
        # Per ticket, the timer mark `load_states` read (absent: no timer row then); the save compares it.
        self._marks: dict[tuple[str, str], int] = {}

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
            {"tenant_id": tenant_id, "ticket_id": snapshot.ticket_id, "source": source,
             "event_id": snapshot.event_id, "event_time": snapshot.time, "snapshot": _snapshot_data(snapshot)}
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
        rows = (await self._session.execute(_STORE_SNAPSHOTS, {
            "tenants": [s.tenant_id for s in snapshots], "sources": [s.source for s in snapshots],
            "ids": [s.event_id for s in snapshots], "tickets": [s.ticket_id for s in snapshots],
            "times": [s.event_time for s in snapshots], "snapshots": [s.snapshot for s in snapshots],
            "traceparents": [s.traceparent for s in snapshots], "consumer": consumer, "now": now,
            "reason": EVENTS_DUE,
        })).all()
        return {(row.tenant_id, row.source, row.event_id) for row in rows}, int(rows[0].due) if rows else 0

    async def load_states(
        self, pairs: Sequence[tuple[str, str]]
    ) -> list[tuple[TicketState, VersionKey | None]]:
        """Everything reconciling these tickets reads, in a fixed number of queries whatever their number, with
        the configuration version each is evaluated with (its text: `bundle_sources`, for versions not parsed yet).

        A ticket not pinned yet gets its tenant's latest configuration (`pinned` False: the caller pins it).
        """
        if not pairs:
            return []
        states = {pair: TicketState(*pair) for pair in pairs}
        # The timer marks first: a snapshot stored after this read changes the mark, so the save leaves the
        # ticket due; one stored before it is in the timeline read next.
        t = tables.timers
        for timer in await self._session.execute(sa.select(t.c.tenant_id, t.c.ticket_id, t.c.mark).where(
                _in_pairs(t, pairs))):
            self._marks[(timer.tenant_id, timer.ticket_id)] = timer.mark
        v, c, cl = tables.ticket_versions, tables.emitted_transitions, tables.clocks
        for pair, timeline in (await self._timelines_of(pairs)).items():
            states[pair].timeline = timeline
        for row in await self._session.execute(sa.select(c).where(_in_pairs(c, pairs))):
            states[(row.tenant_id, row.ticket_id)].emitted.add(
                TransitionKey(row.policy_id, row.metric, row.cycle, row.transition, row.at, row.threshold))
        for row in await self._session.execute(
            sa.select(cl.c.tenant_id, cl.c.ticket_id, cl.c.policy_id, cl.c.metric, cl.c.cycle, cl.c.clock).where(
                _in_pairs(cl, pairs))
        ):
            states[(row.tenant_id, row.ticket_id)].saved[(row.policy_id, row.metric, row.cycle)] = dict(row.clock)
        sq = tables.cycle_sequences
        for row in await self._session.execute(sa.select(sq).where(_in_pairs(sq, pairs))):
            states[(row.tenant_id, row.ticket_id)].sequences[(row.policy_id, row.metric, row.cycle)] = row.sequence
        pins = {(r.tenant_id, r.ticket_id): r.config_version
                for r in await self._session.execute(sa.select(v).where(_in_pairs(v, pairs)))}
        unpinned = sorted({tenant for tenant, ticket in pairs if (tenant, ticket) not in pins})
        newest: dict[str, int] = {}
        if unpinned:
            cv = tables.config_versions
            newest = {r.tenant_id: r.version for r in await self._session.execute(
                sa.select(cv.c.tenant_id, sa.func.max(cv.c.version).label("version"))
                .where(cv.c.tenant_id.in_(unpinned)).group_by(cv.c.tenant_id))}
        result: list[tuple[TicketState, VersionKey | None]] = []
        for pair, state in states.items():
            state.pinned = pair in pins
            version = pins.get(pair, newest.get(pair[0]))
            result.append((state, None if version is None else (pair[0], version)))
        return result

    async def bundle_sources(self, versions: Sequence[VersionKey]) -> dict[VersionKey, BundleSource]:
        """The source text of these configuration versions (those that exist)."""
        if not versions:
            return {}
        cv = tables.config_versions
        rows = await self._session.execute(
            sa.select(cv.c.tenant_id, cv.c.version, cv.c.source_text)
            .where(sa.tuple_(cv.c.tenant_id, cv.c.version).in_(sorted(set(versions)))))
        return {(r.tenant_id, r.version): BundleSource(r.tenant_id, r.version, r.source_text) for r in rows}

    async def _timelines_of(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[TicketSnapshot]]:
        """Each ticket's snapshots by (event time, arrival); with a cache, only rows not decoded yet are read whole."""
        e = tables.ticket_events
        order = (e.c.tenant_id, e.c.ticket_id, e.c.event_time, e.c.arrival)
        timelines: dict[tuple[str, str], list[TicketSnapshot]] = {pair: [] for pair in pairs}
        if self._timelines is None:
            for row in await self._session.execute(sa.select(e).where(_in_pairs(e, pairs)).order_by(*order)):
                timelines[(row.tenant_id, row.ticket_id)].append(_snapshot_from_row(row))
            return timelines
        cache = self._timelines
        listing = (await self._session.execute(
            sa.select(e.c.tenant_id, e.c.ticket_id, e.c.arrival).where(_in_pairs(e, pairs)).order_by(*order))).all()
        cached = {pair: cache.rows(pair) for pair in pairs}
        missing = [row.arrival for row in listing if row.arrival not in cached[(row.tenant_id, row.ticket_id)]]
        fetched: dict[int, TicketSnapshot] = {}  # this load's own copy: the cache may evict during a large batch
        if missing:
            wanted = sa.bindparam("arrivals", missing, type_=ARRAY(sa.BigInteger))
            for row in await self._session.execute(sa.select(e).where(e.c.arrival == sa.any_(wanted))):
                fetched[row.arrival] = _snapshot_from_row(row)
                cache.keep((row.tenant_id, row.ticket_id), row.arrival, fetched[row.arrival])
        for row in listing:
            known = cached[(row.tenant_id, row.ticket_id)]
            timelines[(row.tenant_id, row.ticket_id)].append(
                known[row.arrival] if row.arrival in known else fetched[row.arrival])
        return timelines

    async def save_reconciliations(self, results: Sequence[Reconciliation], now: datetime) -> None:
        """Write what `reconcile_ticket` decided for these tickets, in bulk."""
        if not results:
            return
        pairs = [(r.tenant_id, r.ticket_id) for r in results]
        published = [
            {"tenant_id": r.tenant_id, "ticket_id": r.ticket_id, "policy_id": k.policy_id, "metric": k.metric,
             "cycle": k.cycle, "transition": k.transition, "at": k.at, "threshold": k.threshold}
            for r in results for k in r.published
        ]
        if published:
            await self._session.execute(insert(tables.emitted_transitions).on_conflict_do_nothing(), published)
        retracted = [(r.tenant_id, r.ticket_id, *transition_key(k)) for r in results for k in r.retracted]
        if retracted:
            e = tables.emitted_transitions
            columns = (e.c.tenant_id, e.c.ticket_id, e.c.policy_id, e.c.metric, e.c.cycle, e.c.transition, e.c.at,
                       e.c.threshold)
            await self._session.execute(sa.delete(e).where(sa.tuple_(*columns).in_(retracted)))
        sequences = [{"tenant_id": r.tenant_id, "ticket_id": r.ticket_id, "policy_id": policy, "metric": metric,
                      "cycle": cycle, "sequence": sequence}
                     for r in results for (policy, metric, cycle), sequence in sorted(r.sequences.items())]
        if sequences:
            statement = insert(tables.cycle_sequences)
            await self._session.execute(statement.on_conflict_do_update(
                index_elements=["tenant_id", "ticket_id", "policy_id", "metric", "cycle"],
                set_={"sequence": statement.excluded.sequence}), sequences)
        c = tables.clocks
        await self._session.execute(sa.delete(c).where(_in_pairs(c, pairs)))
        clock_rows = [{**row, "tenant_id": r.tenant_id, "ticket_id": r.ticket_id, "updated_at": now}
                      for r in results for row in r.clock_rows()]
        if clock_rows:
            await self._session.execute(sa.insert(c), clock_rows)
        await self._save_timers([(r.tenant_id, r.ticket_id, r.timer) for r in results])
        pins = [{"tenant_id": r.tenant_id, "ticket_id": r.ticket_id, "config_version": r.pin_version,
                 "first_event_at": r.first_event_at} for r in results if r.pin_version is not None]
        if pins:
            await self._session.execute(insert(tables.ticket_versions).on_conflict_do_nothing(), pins)

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

    async def latest_source(self, tenant_id: str, *, only_with_slos: bool = False) -> BundleSource | None:
        """The tenant's latest version as parsing needs it; `only_with_slos`: None unless its bundle has SLOs
        (asked of the stored JSONB in the database, which is not read)."""
        c = tables.config_versions
        has_slos = sa.func.jsonb_array_length(sa.func.coalesce(c.c.bundle["slos"], sa.text("'[]'::jsonb"))) > 0
        # Without SLOs the text is not even read (a thousand policies: megabytes, every SLO pass).
        text = sa.case((has_slos, c.c.source_text), else_=None) if only_with_slos else c.c.source_text
        row = (await self._session.execute(
            sa.select(c.c.tenant_id, c.c.version, text.label("source_text"))
            .where(c.c.tenant_id == tenant_id).order_by(c.c.version.desc()).limit(1))).first()
        if row is None or row.source_text is None:
            return None
        return BundleSource(row.tenant_id, row.version, row.source_text)

    async def config(self, tenant_id: str, version: int) -> BundleSource | None:
        sources = await self.bundle_sources([(tenant_id, version)])
        return sources.get((tenant_id, version))

    async def config_for_ticket(
        self, tenant_id: str, ticket_id: str, first_event_at: datetime
    ) -> BundleSource | None:
        """The ticket's pinned version; a ticket seen for the first time is pinned to the latest."""
        v = tables.ticket_versions
        pinned = (
            await self._session.execute(
                sa.select(v.c.config_version).where(v.c.tenant_id == tenant_id, v.c.ticket_id == ticket_id)
            )
        ).scalar()
        if pinned is not None:
            return await self.config(tenant_id, pinned)
        latest = await self.latest_source(tenant_id)
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

    async def clear_timers(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Drop these tickets' timers, unless the consumer has made them due again since `load_states`."""
        await self._save_timers([(tenant, ticket, None) for tenant, ticket in pairs])

    async def _save_timers(self, timers: Sequence[tuple[str, str, tuple[datetime, str] | None]]) -> None:
        """Each ticket's next timer (None: none), against the marks `load_states` read (`_SAVE_TIMERS`)."""
        if not timers:
            return
        await self._session.execute(_SAVE_TIMERS, {
            "tenants": [tenant for tenant, _, _ in timers], "tickets": [ticket for _, ticket, _ in timers],
            "marks": [self._marks.get((tenant, ticket)) for tenant, ticket, _ in timers],
            "dues": [timer[0] if timer else None for _, _, timer in timers],
            "transitions": [timer[1] if timer else None for _, _, timer in timers],
        })

    async def due_tickets(self, now: datetime, limit: int, per_tenant: int,
                          caps: Mapping[str, int] | None = None, part: tuple[int, int] = (0, 1)) -> list[DueTimer]:
        """Up to `limit` due tickets, at most `per_tenant` of each tenant (fewer for a tenant `caps` names), in
        round-robin order across tenants; only those of slice `part` = (index, count) of a hash partition.

        Each tenant's earliest due ticket comes first, then each one's second, and so on, so one tenant's
        backlog never queues another's tickets behind it. Rows another worker holds are skipped; the rounds in
        flight in one process take disjoint slices, so one never finds its turn taken by the other.
        """
        cap_tenants = list(caps or {})
        rows = await self._session.execute(DUE_TICKETS, {
            "now": now, "limit": limit, "candidates": 3 * limit, "per_tenant": per_tenant,
            "cap_tenants": cap_tenants, "cap_counts": [min((caps or {})[t], per_tenant) for t in cap_tenants],
            "part": part[0], "parts": part[1],
        })
        return [DueTimer(r.tenant_id, r.ticket_id, r.due_at, r.transition, r.traceparent) for r in rows]

    async def next_timer_due(self) -> datetime | None:
        t = tables.timers
        value: datetime | None = (await self._session.execute(sa.select(sa.func.min(t.c.due_at)))).scalar()
        return value

    async def count_clocks(self) -> dict[tuple[str, bool], int]:
        """Every tenant's current clocks by (state, breached): running and breached is an overdue clock."""
        c = tables.clocks
        rows = await self._session.execute(
            sa.select(c.c.state, c.c.breached, sa.func.count()).group_by(c.c.state, c.c.breached))
        return {(state, breached): count for state, breached, count in rows.tuples()}
