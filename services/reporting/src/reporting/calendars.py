"""The consumer of the business calendars the sla-engine announces, kept for bringing running clocks forward
(domain.live; read back through reporting.read_side.calendars).

Consumed from `sla.calendars.v1` (compacted: a group that starts late still reads every calendar in force)
with the kit's consumer pipeline: the inbox rows and the calendar rows of a batch commit together, so a
redelivered announcement changes nothing. One row per calendar and bundle version, as announced: a clock pinned
to a version counts with that version's hours. A definition larger than reporting keeps is refused before any
effect and set aside with its reason (the pipeline's dead letter), never silently dropped nor half stored.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from faststream.kafka import KafkaRouter

from slm_shared import topics
from slm_shared.consumer import Record, RecordsRefused, parse_batch
from slm_shared.events import CALENDAR_EVENT, CalendarData

if TYPE_CHECKING:
    from collections.abc import Sequence

    from reporting.unit_of_work import Units
    from slm_shared.runtime import ServiceRuntime
    from slm_shared.time_source import Now

log = logging.getLogger(__name__)

# Bounds of one definition: a weekday of every quarter hour, and ten years of daily extra holidays or make-up
# days, are far beyond a real calendar yet small enough to index (the index holds every working interval).
MAX_DEFINITION_BYTES = 256 * 1024
MAX_INTERVALS_PER_DAY = 96
MAX_EXTRA_DAYS = 3_660


def oversized(record: Record, data: CalendarData) -> str | None:
    """Why a definition is too large to keep, or None."""
    size = len(record.value or b"")
    if size > MAX_DEFINITION_BYTES:
        return f"calendar {data.calendar_id!r}: the record is {size} bytes, more than {MAX_DEFINITION_BYTES}"
    busiest = max(len(day) for day in data.hours)
    if busiest > MAX_INTERVALS_PER_DAY:
        return (
            f"calendar {data.calendar_id!r}: a weekday has {busiest} working intervals, "
            f"more than {MAX_INTERVALS_PER_DAY}"
        )
    for name, days in (("extra_holidays", data.extra_holidays), ("extra_workdays", data.extra_workdays)):
        if len(days) > MAX_EXTRA_DAYS:
            return f"calendar {data.calendar_id!r}: {len(days)} {name}, more than {MAX_EXTRA_DAYS}"
    return None


def subscribe_calendars(runtime: ServiceRuntime, units: Units, now: Now) -> KafkaRouter:
    """The subscriber of `sla.calendars.v1`, in a group of its own (it reads the compacted topic from the start
    and never makes the read models' group rebalance)."""
    router = KafkaRouter()

    async def handle(records: Sequence[Record]) -> list[str]:
        batch = parse_batch(records, {CALENDAR_EVENT})
        if not batch.events:
            return batch.outcomes
        refused: dict[int, str] = {}
        for position, data in zip(batch.positions, batch.data, strict=True):
            assert isinstance(data, CalendarData)
            reason = oversized(records[position], data)
            if reason is not None:
                refused[position] = reason
        if refused:
            raise RecordsRefused(refused)  # the pipeline sets them aside and hands the others back
        received_at = now()
        async with units() as uow:
            fresh = await uow.calendar_inbox.first_deliveries(batch.events)
            kept = {id(event) for event in fresh}
            await uow.read_models.store_calendars(
                [
                    (event.tenantid, event.id, data)
                    for event, data in zip(batch.events, batch.data, strict=True)
                    if id(event) in kept and isinstance(data, CalendarData)
                ],
                received_at,
            )
            await uow.commit()
        for event in fresh:
            log.info(
                "calendar %s of bundle version %s kept for tenant %s",
                event.data.get("calendar_id"),
                event.data.get("bundle_version"),
                event.tenantid,
            )
        return list(batch.mark_duplicates(fresh))

    runtime.consume(
        router,
        topics.CALENDARS,
        handle=handle,
        group_id=f"{runtime.group_id}-calendars",
        title="calendars",
        description="sla.calendar.v1: the business calendars of each applied bundle, from the sla-engine",
    )
    return router
