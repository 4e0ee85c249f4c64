"""Intake's handlers: validate, dedup and route events, one transaction for a request or a record."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from intake import tables
from intake.domain import EventResult, Routed, accept
from slm_shared.events import InvalidEvent
from slm_shared.outbox import Outbox, OutgoingEvent


@dataclass(frozen=True)
class Incoming:
    document: Any
    raw: bytes


class EventIntake:
    """Accepts events for a tenant: validated, deduplicated on (tenantid, source, id), archived, routed.

    Idempotent: the dedup row and the outbox row are written in the same transaction, so a retried
    request or a redelivered record yields `duplicate` and never a second canonical event.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], max_future_skew_seconds: int) -> None:
        self._sessions = sessions
        self._outbox = Outbox(tables.outbox)
        self._skew = timedelta(seconds=max_future_skew_seconds)

    async def accept_batch(
        self, tenant_id: str | None, incoming: Sequence[Incoming], channel: str
    ) -> list[EventResult]:
        now = datetime.now(UTC)
        results: list[EventResult] = []
        routed: list[tuple[int, Routed, bytes]] = []
        for index, item in enumerate(incoming):
            try:
                routed.append((index, accept(item.document, tenant_id=tenant_id, now=now,
                                             max_future_skew=self._skew), item.raw))
            except InvalidEvent as error:
                event_id = item.document.get("id") if isinstance(item.document, dict) else None
                results.append(EventResult(index, "rejected", str(event_id) if event_id else None, str(error)))
        async with self._sessions() as session, session.begin():
            for index, event, raw in routed:
                results.append(await self._record(session, index, event, raw, channel))
        return sorted(results, key=lambda result: result.index)

    async def _record(self, session: AsyncSession, index: int, item: Routed, raw: bytes, channel: str) -> EventResult:
        event = item.event
        inserted = (
            await session.execute(
                insert(tables.received_events)
                .values(tenant_id=event.tenantid, source=event.source, event_id=event.id, type=event.type,
                        event_time=event.time, channel=channel, payload=raw)
                .on_conflict_do_nothing()
                .returning(tables.received_events.c.event_id)
            )
        ).first()
        if inserted is None:
            return EventResult(index, "duplicate", event.id)
        await self._outbox.add(session, [OutgoingEvent(topic=item.topic, key=item.key, event=event)])
        return EventResult(index, "accepted", event.id)


def split_batch(body: bytes) -> list[Incoming]:
    """A JSON array of events: each keeps its own re-serialised bytes for the archive."""
    documents = json.loads(body)
    if not isinstance(documents, list):
        raise InvalidEvent("body: a batch must be a JSON array of CloudEvents")
    return [Incoming(document, json.dumps(document).encode()) for document in documents]

