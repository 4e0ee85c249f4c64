"""Each ticket's reconciled state on PostgreSQL: what reconciling reads (timeline, published transitions, clock
rows, cycle sequences, pinned version) and what it writes back, in bulk; and the clocks counted by state.

The timer side of a reconciliation (the due marks, the next timer) is `clocks/due_queue.py`'s. Repositories never
commit: they work inside the caller's unit of work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert

from sla_engine import tables
from sla_engine.clocks.rows import in_pairs, snapshot_from_row
from sla_engine.domain.clocks import TransitionKey, transition_key
from sla_engine.domain.reconciliation import TicketState

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

    from sla_engine.clocks.publication import ReconciledTicket
    from sla_engine.clocks.timeline_cache import TimelineCache
    from sla_engine.domain.timeline import TicketSnapshot
    from sla_engine.ports import VersionKey


class SqlClockStateRepository:
    """The clock side's stored state, inside the caller's transaction.

    With a `TimelineCache` (one per database, kept by the caller across transactions), `load_states` decodes
    only the timeline rows it has not decoded before. The cache is a second argument because it outlives the
    session: `create_app` builds it once and `EngineUnitOfWork` hands it to each transaction's repository.
    """

    def __init__(self, session: AsyncSession, timelines: TimelineCache | None = None) -> None:
        self._session = session
        self._timelines = timelines

    async def load_states(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[TicketState, VersionKey | None]]:
        """Everything reconciling these tickets reads, in a fixed number of queries whatever their number, with
        the configuration version each is evaluated with (its text: `bundle_sources`, for versions not parsed yet).

        A ticket not pinned yet gets its tenant's latest configuration (`pinned` False: the caller pins it).
        """
        if not pairs:
            return []
        states = {pair: TicketState(*pair) for pair in pairs}
        v, c, cl = tables.ticket_versions, tables.emitted_transitions, tables.clocks
        for pair, timeline in (await self._timelines_of(pairs)).items():
            states[pair].timeline = timeline
        for row in await self._session.execute(sa.select(c).where(in_pairs(c, pairs))):
            states[(row.tenant_id, row.ticket_id)].emitted.add(
                TransitionKey(row.policy_id, row.metric, row.cycle, row.transition, row.at, row.threshold)
            )
        for row in await self._session.execute(
            sa.select(cl.c.tenant_id, cl.c.ticket_id, cl.c.policy_id, cl.c.metric, cl.c.cycle, cl.c.clock).where(
                in_pairs(cl, pairs)
            )
        ):
            states[(row.tenant_id, row.ticket_id)].saved[(row.policy_id, row.metric, row.cycle)] = dict(row.clock)
        sq = tables.cycle_sequences
        for row in await self._session.execute(sa.select(sq).where(in_pairs(sq, pairs))):
            states[(row.tenant_id, row.ticket_id)].sequences[(row.policy_id, row.metric, row.cycle)] = row.sequence
        pins = {
            (r.tenant_id, r.ticket_id): r.config_version
            for r in await self._session.execute(sa.select(v).where(in_pairs(v, pairs)))
        }
        unpinned = sorted({tenant for tenant, ticket in pairs if (tenant, ticket) not in pins})
        newest: dict[str, int] = {}
        if unpinned:
            cv = tables.config_versions
            newest = {
                r.tenant_id: r.version
                for r in await self._session.execute(
                    sa.select(cv.c.tenant_id, sa.func.max(cv.c.version).label("version"))
                    .where(cv.c.tenant_id.in_(unpinned))
                    .group_by(cv.c.tenant_id)
                )
            }
        result: list[tuple[TicketState, VersionKey | None]] = []
        for pair, state in states.items():
            state.pinned = pair in pins
            version = pins.get(pair, newest.get(pair[0]))
            result.append((state, None if version is None else (pair[0], version)))
        return result

    async def _timelines_of(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[TicketSnapshot]]:
        """Each ticket's snapshots by (event time, arrival); with a cache, only rows not decoded yet are read whole."""
        e = tables.ticket_events
        order = (e.c.tenant_id, e.c.ticket_id, e.c.event_time, e.c.arrival)
        timelines: dict[tuple[str, str], list[TicketSnapshot]] = {pair: [] for pair in pairs}
        if self._timelines is None:
            for row in await self._session.execute(sa.select(e).where(in_pairs(e, pairs)).order_by(*order)):
                timelines[(row.tenant_id, row.ticket_id)].append(snapshot_from_row(row))
            return timelines
        cache = self._timelines
        listing = (
            await self._session.execute(
                sa.select(e.c.tenant_id, e.c.ticket_id, e.c.arrival).where(in_pairs(e, pairs)).order_by(*order)
            )
        ).all()
        cached = {pair: cache.rows(pair) for pair in pairs}
        missing = [row.arrival for row in listing if row.arrival not in cached[(row.tenant_id, row.ticket_id)]]
        fetched: dict[int, TicketSnapshot] = {}  # this load's own copy: the cache may evict during a large batch
        if missing:
            wanted = sa.bindparam("arrivals", missing, type_=ARRAY(sa.BigInteger))
            for row in await self._session.execute(sa.select(e).where(e.c.arrival == sa.any_(wanted))):
                fetched[row.arrival] = snapshot_from_row(row)
                cache.keep((row.tenant_id, row.ticket_id), row.arrival, fetched[row.arrival])
        for row in listing:
            known = cached[(row.tenant_id, row.ticket_id)]
            timelines[(row.tenant_id, row.ticket_id)].append(
                known[row.arrival] if row.arrival in known else fetched[row.arrival]
            )
        return timelines

    async def save_reconciliations(self, results: Sequence[ReconciledTicket], now: datetime) -> None:
        """Write what `reconcile_ticket` decided for these tickets, in bulk (their timers: `SqlTimerRepository`)."""
        if not results:
            return
        pairs = [(r.tenant_id, r.ticket_id) for r in results]
        published = [
            {
                "tenant_id": r.tenant_id,
                "ticket_id": r.ticket_id,
                "policy_id": k.policy_id,
                "metric": k.metric,
                "cycle": k.cycle,
                "transition": k.transition,
                "at": k.at,
                "threshold": k.threshold,
            }
            for r in results
            for k in r.published
        ]
        if published:
            await self._session.execute(insert(tables.emitted_transitions).on_conflict_do_nothing(), published)
        retracted = [(r.tenant_id, r.ticket_id, *transition_key(k)) for r in results for k in r.retracted]
        if retracted:
            e = tables.emitted_transitions
            columns = (
                e.c.tenant_id,
                e.c.ticket_id,
                e.c.policy_id,
                e.c.metric,
                e.c.cycle,
                e.c.transition,
                e.c.at,
                e.c.threshold,
            )
            await self._session.execute(sa.delete(e).where(sa.tuple_(*columns).in_(retracted)))
        sequences = [
            {
                "tenant_id": r.tenant_id,
                "ticket_id": r.ticket_id,
                "policy_id": policy,
                "metric": metric,
                "cycle": cycle,
                "sequence": sequence,
            }
            for r in results
            for (policy, metric, cycle), sequence in sorted(r.sequences.items())
        ]
        if sequences:
            statement = insert(tables.cycle_sequences)
            await self._session.execute(
                statement.on_conflict_do_update(
                    index_elements=["tenant_id", "ticket_id", "policy_id", "metric", "cycle"],
                    set_={"sequence": statement.excluded.sequence},
                ),
                sequences,
            )
        c = tables.clocks
        await self._session.execute(sa.delete(c).where(in_pairs(c, pairs)))
        clock_rows = [
            {**row, "tenant_id": r.tenant_id, "ticket_id": r.ticket_id, "updated_at": now}
            for r in results
            for row in r.clock_rows()
        ]
        if clock_rows:
            await self._session.execute(sa.insert(c), clock_rows)
        pins = [
            {
                "tenant_id": r.tenant_id,
                "ticket_id": r.ticket_id,
                "config_version": r.pin_version,
                "first_event_at": r.first_event_at,
            }
            for r in results
            if r.pin_version is not None
        ]
        if pins:
            await self._session.execute(insert(tables.ticket_versions).on_conflict_do_nothing(), pins)

    async def count_clocks(self) -> dict[tuple[str, bool], int]:
        """Every tenant's current clocks by (state, breached): running and breached is an overdue clock."""
        c = tables.clocks
        rows = await self._session.execute(
            sa.select(c.c.state, c.c.breached, sa.func.count()).group_by(c.c.state, c.c.breached)
        )
        return {(state, breached): count for state, breached, count in rows}
