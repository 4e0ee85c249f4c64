"""Replay: a tenant's archived canonical events of a time range published again, through the outbox."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from intake.domain import route
from slm_shared.events import CloudEvent
from slm_shared.outbox import OutgoingEvent

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from intake.ports import IntakeUnitsOfWork
    from intake.repository import ArchivedEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplaySummary:
    replay_id: str
    events: int
    skipped: int


class Replayer:
    """Re-publishes a tenant's archived canonical events of a time range through the outbox.

    Safe to repeat: every event keeps its id, so downstream inboxes skip what they already applied; a
    replay repairs consumers whose state was lost or rebuilt. Pages of `page_size` events, one transaction
    each, in event-time order; every record carries the header `slm-replay: <replay id>`.
    """

    def __init__(self, units: IntakeUnitsOfWork, page_size: int, topic_prefix: str = "") -> None:
        self._units = units
        self._page_size = page_size
        self._topic_prefix = topic_prefix

    async def count(self, tenant_id: str, start: datetime, end: datetime, types: Sequence[str] | None) -> int:
        async with self._units() as uow:
            return await uow.received.count_archive(tenant_id, start, end, types)

    async def replay(
        self,
        tenant_id: str,
        start: datetime,
        end: datetime,
        types: Sequence[str] | None = None,
        progress: Callable[[int], object] | None = None,
    ) -> ReplaySummary:
        replay_id = uuid.uuid4().hex
        published = skipped = 0
        after: ArchivedEvent | None = None
        while True:
            async with self._units() as uow:
                page = await uow.received.archive_page(tenant_id, start, end, types, after, self._page_size)
                outgoing = []
                for archived in page:
                    try:
                        event = CloudEvent.model_validate_json(archived.canonical)
                        topic, key = route(event)
                    except (ValueError, KeyError):
                        skipped += 1
                        continue
                    outgoing.append(
                        OutgoingEvent(
                            topic=self._topic_prefix + topic, key=key, event=event, headers={"slm-replay": replay_id}
                        )
                    )
                await uow.outbox.add(outgoing)
                await uow.commit()
            published += len(outgoing)
            if progress is not None and page:
                progress(len(page))
            if len(page) < self._page_size:
                break
            after = page[-1]
        log.info("replay %s of tenant %s: %d events re-published, %d skipped", replay_id, tenant_id, published, skipped)
        return ReplaySummary(replay_id, published, skipped)
