"""Reporting's handlers: fold clock transitions into the clock-outcome read model."""

from __future__ import annotations

import logging

from aiokafka.structs import ConsumerRecord
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from reporting import tables
from slm_shared.events import CLOCK_EVENT, ClockTransitionData, CloudEvent, InvalidEvent, parse_cloudevent
from slm_shared.inbox import Inbox
from slm_shared.logging import log_context

log = logging.getLogger(__name__)


class ClockOutcomes:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._inbox = Inbox(tables.inbox, "reporting.clocks")

    async def on_clock_record(self, record: ConsumerRecord[bytes, bytes]) -> str:
        try:
            event = parse_cloudevent(record.value or b"")
        except InvalidEvent as error:
            log.error("dropping an invalid record from %s: %s", record.topic, error)
            return "rejected"
        if event.type != CLOCK_EVENT:
            return "ignored"
        return await self.on_clock_event(event)

    async def on_clock_event(self, event: CloudEvent) -> str:
        """Business rule: the latest transition by event time wins; `recalculated` always replaces.

        Idempotent: the inbox drops a redelivered event in the same transaction as the upsert.
        """
        data = ClockTransitionData.model_validate(event.data)
        with log_context(tenant=event.tenantid, event_id=event.id, ticket_id=data.ticket_id):
            async with self._sessions() as session, session.begin():
                if not await self._inbox.first_delivery(session, event.tenantid, event.source, event.id):
                    return "duplicate"
                await session.execute(upsert_outcome(event, data))
        return "applied"


def upsert_outcome(event: CloudEvent, data: ClockTransitionData):  # type: ignore[no-untyped-def]
    t = tables.clock_outcomes
    values = {
        "tenant_id": event.tenantid, "ticket_id": data.ticket_id, "policy_id": data.policy_id,
        "metric": data.metric, "cycle": data.cycle, "agreement": data.agreement,
        "policy_version": data.policy_version, "state": data.state, "breached": data.breached,
        "service": data.service, "customer": data.customer, "priority": data.priority, "kind": data.kind,
        "calendar": data.calendar, "target_seconds": data.target_seconds, "elapsed_seconds": data.elapsed_seconds,
        "started_at": data.started_at, "due_at": data.due_at, "breached_at": data.breached_at,
        "stopped_at": data.stopped_at, "last_transition": data.transition, "last_event_time": event.time,
        "last_event_id": event.id,
    }
    statement = insert(t).values(**values)
    replace = {k: statement.excluded[k] for k in values if k not in ("tenant_id", "ticket_id", "policy_id",
                                                                       "metric", "cycle")}
    return statement.on_conflict_do_update(
        index_elements=[t.c.tenant_id, t.c.ticket_id, t.c.policy_id, t.c.metric, t.c.cycle],
        set_=replace,
        where=(statement.excluded.last_transition == "recalculated")
        | (statement.excluded.last_event_time >= t.c.last_event_time),
    )
