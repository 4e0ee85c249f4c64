"""The sla-engine's handlers: ticket snapshots and due timers in, clock transitions out through the outbox.

Every path ends in `reconcile`: re-evaluate the ticket's clocks from its whole timeline (a pure function),
publish the transitions not yet published, and retract by a `recalculated` event those a late event proved
wrong. Because the result depends only on the timeline, out-of-order, late and duplicate deliveries give
exactly the in-order result, and a redelivered snapshot changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter, Histogram
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sla_engine import tables
from sla_engine.config import BundleCache
from sla_engine.domain.clocks import Clock, TransitionKey, diff_transitions, evaluate_ticket
from sla_engine.domain.timeline import TicketSnapshot
from sla_engine.repository import SqlSlaRepository
from slm_shared import topics
from slm_shared.events import (
    CLOCK_EVENT,
    TICKET_EVENT,
    ClockTransitionData,
    CloudEvent,
    InvalidEvent,
    RetractedTransition,
    TicketSnapshotData,
    make_event,
    parse_cloudevent,
)
from slm_shared.inbox import Inbox
from slm_shared.logging import log_context
from slm_shared.outbox import Outbox, OutgoingEvent

log = logging.getLogger(__name__)
SOURCE = "slm://sla-engine"

TRANSITIONS_EMITTED = Counter("slm_clock_transitions_total", "Clock transitions published", ["transition"])
TIMER_LATENESS = Histogram(
    "slm_timer_lateness_seconds", "Fired minus due for durable timers",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)

Now = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def clock_payload(
    clock: Clock, transition: str, threshold: int | None, retracts: TransitionKey | None = None
) -> ClockTransitionData:
    retracted = None
    if retracts is not None:
        retracted = RetractedTransition(transition=retracts.transition, at=retracts.at,
                                        threshold=retracts.threshold or None)
    return ClockTransitionData(
        ticket_id=clock.ticket_id, policy_id=clock.policy_id, policy_version=clock.policy_version,
        agreement=clock.agreement, metric=clock.metric, cycle=clock.cycle, transition=transition,
        state=clock.state, breached=clock.breached, target_seconds=clock.target_seconds,
        elapsed_seconds=clock.elapsed_seconds, remaining_seconds=clock.remaining_seconds,
        percent=float(clock.percent), started_at=clock.started_at, due_at=clock.due_at,
        breached_at=clock.breached_at, stopped_at=clock.stopped_at, threshold=threshold, retracts=retracted,
        service=clock.service, customer=clock.customer, priority=clock.priority, kind=clock.kind,
        calendar=clock.calendar,
    )


def clock_row(clock: Clock) -> dict[str, Any]:
    return {
        "policy_id": clock.policy_id, "metric": clock.metric, "cycle": clock.cycle,
        "policy_version": clock.policy_version, "state": clock.state, "breached": clock.breached,
        "due_at": clock.due_at, "clock": clock_payload(clock, "recalculated", None).model_dump(mode="json"),
    }


class ClockKeeper:
    """Keeps every ticket's published clock transitions equal to what its timeline implies."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], bundles: BundleCache, now: Now = utc_now) -> None:
        self._sessions = sessions
        self._bundles = bundles
        self._now = now
        self._outbox = Outbox(tables.outbox)
        self._inbox = Inbox(tables.inbox, "sla-engine.tickets")

    async def on_ticket_record(self, record: ConsumerRecord[bytes, bytes]) -> str:
        """Business rule: a snapshot joins its ticket's timeline and the ticket is reconciled.

        Idempotent: a redelivered event id is dropped by the inbox in the same transaction.
        """
        try:
            event = parse_cloudevent(record.value or b"")
        except InvalidEvent as error:
            log.error("dropping an invalid record from %s: %s", record.topic, error)
            return "rejected"
        if event.type != TICKET_EVENT:
            return "ignored"
        return await self.on_ticket_event(event)

    async def on_ticket_event(self, event: CloudEvent) -> str:
        data = TicketSnapshotData.model_validate(event.data)
        snapshot = TicketSnapshot(
            event_id=event.id, time=event.time, arrival=0, ticket_id=data.ticket_id, action=data.action,
            kind=data.kind, status=data.status, priority=data.priority, service=data.service,
            customer=data.customer, assignment_group=data.assignment_group, assignee=data.assignee,
            attributes=data.attributes,
        )
        with log_context(tenant=event.tenantid, event_id=event.id, ticket_id=data.ticket_id):
            async with self._sessions() as session, session.begin():
                repository = SqlSlaRepository(session)
                await repository.lock_ticket(event.tenantid, data.ticket_id)
                if not await self._inbox.first_delivery(session, event.tenantid, event.source, event.id):
                    return "duplicate"
                await repository.add_snapshot(event.tenantid, event.source, event.id, snapshot)
                await self.reconcile(session, event.tenantid, data.ticket_id, self._now())
        return "applied"

    async def fire_due_timers(self, limit: int) -> int:
        """Fire every timer due now: one transaction, each ticket under its lock; returns tickets fired.

        A ticket whose lock another worker holds is skipped: that worker reconciles it and reschedules.
        """
        now = self._now()
        fired = 0
        async with self._sessions() as session, session.begin():
            repository = SqlSlaRepository(session)
            for timer in await repository.due_timers(now, limit):
                if not await repository.try_lock_ticket(timer.tenant_id, timer.ticket_id):
                    continue
                with log_context(tenant=timer.tenant_id, ticket_id=timer.ticket_id):
                    await self.reconcile(session, timer.tenant_id, timer.ticket_id, now)
                TIMER_LATENESS.observe(max(0.0, (self._now() - timer.due_at).total_seconds()))
                fired += 1
        return fired

    async def reconcile(self, session: AsyncSession, tenant_id: str, ticket_id: str, now: datetime) -> list[Clock]:
        """Publish what the timeline now implies and reschedule the ticket's timer. Caller holds the lock."""
        repository = SqlSlaRepository(session)
        timeline = await repository.timeline(tenant_id, ticket_id)
        config = await repository.config_for_ticket(tenant_id, ticket_id, timeline[0].time) if timeline else None
        if config is None:
            await repository.set_timer(tenant_id, ticket_id, None)
            return []
        bundle = self._bundles.get(config)
        clocks = evaluate_ticket(timeline, bundle, policy_version=config.version, at=now)
        diff = diff_transitions(await repository.emitted(tenant_id, ticket_id),
                                (t for c in clocks for t in c.transitions))
        by_cycle = {(c.policy_id, c.metric, c.cycle): c for c in clocks}

        outgoing: list[OutgoingEvent] = []
        for transition in sorted(diff.new, key=lambda t: (t.at, t.cycle)):
            # The payload is the clock as it stood at the transition's instant (DESIGN 2.4: event time).
            clock = by_cycle[(transition.policy_id, transition.metric, transition.cycle)]
            at_transition = self._clock_at(timeline, bundle, config.version, clock, transition.at)
            outgoing.append(self._event(tenant_id, at_transition, transition.transition, transition.threshold,
                                        transition.at))
        saved = await repository.saved_clocks(tenant_id, ticket_id) if diff.retracted else {}
        for key in sorted(diff.retracted, key=lambda k: (k.at, k.cycle)):
            cycle = (key.policy_id, key.metric, key.cycle)
            if cycle in by_cycle:
                outgoing.append(self._event(tenant_id, by_cycle[cycle], "recalculated", None, now, retracts=key))
            elif cycle in saved:
                outgoing.append(self._voided_cycle(tenant_id, saved[cycle], key, now))
        await self._outbox.add(session, outgoing)
        await repository.record_emitted(tenant_id, ticket_id, [t.key for t in diff.new])
        await repository.forget_emitted(tenant_id, ticket_id, diff.retracted)
        await repository.save_clocks(tenant_id, ticket_id, [clock_row(c) for c in clocks], now)
        await repository.set_timer(tenant_id, ticket_id, self._next_timer(clocks, now))
        for transition in diff.new:
            TRANSITIONS_EMITTED.labels(transition.transition).inc()
        return clocks

    @staticmethod
    def _clock_at(timeline: list[TicketSnapshot], bundle: Any, version: int, clock: Clock, at: datetime) -> Clock:
        for candidate in evaluate_ticket(timeline, bundle, policy_version=version, at=at):
            if (candidate.policy_id, candidate.metric, candidate.cycle) == (clock.policy_id, clock.metric, clock.cycle):
                return candidate
        return clock

    @staticmethod
    def _next_timer(clocks: list[Clock], now: datetime) -> tuple[datetime, str] | None:
        upcoming = [due for c in clocks if (due := c.next_due_transition(now)) is not None]
        if not upcoming:
            return None
        name, at, _ = min(upcoming, key=lambda item: item[1])
        return at, name

    @staticmethod
    def _voided_cycle(tenant_id: str, saved: dict[str, Any], key: TransitionKey, now: datetime) -> OutgoingEvent:
        """A cycle the timeline no longer implies: it counts nowhere, like a cancelled one."""
        data = ClockTransitionData.model_validate({
            **saved, "transition": "recalculated", "state": "cancelled", "breached": False, "due_at": None,
            "retracts": {"transition": key.transition, "at": key.at, "threshold": key.threshold or None},
        })
        event = make_event(
            event_id=f"{data.ticket_id}:{key.policy_id}:{key.metric}:{key.cycle}:voided:{key.transition}@{key.at.isoformat()}",
            source=SOURCE, event_type=CLOCK_EVENT, time=now, tenant_id=tenant_id, subject=data.ticket_id, data=data,
        )
        return OutgoingEvent(topic=topics.CLOCKS, key=topics.ticket_key(tenant_id, data.ticket_id), event=event)

    @staticmethod
    def _event(
        tenant_id: str, clock: Clock, transition: str, threshold: int | None, at: datetime,
        retracts: TransitionKey | None = None,
    ) -> OutgoingEvent:
        suffix = f"{transition}:{threshold or 0}:{at.isoformat()}"
        if retracts is not None:
            suffix += f":retracts:{retracts.transition}@{retracts.at.isoformat()}"
        event = make_event(
            event_id=f"{clock.ticket_id}:{clock.policy_id}:{clock.metric}:{clock.cycle}:{suffix}",
            source=SOURCE, event_type=CLOCK_EVENT, time=at, tenant_id=tenant_id, subject=clock.ticket_id,
            data=clock_payload(clock, transition, threshold, retracts),
        )
        return OutgoingEvent(topic=topics.CLOCKS, key=topics.ticket_key(tenant_id, clock.ticket_id), event=event)
