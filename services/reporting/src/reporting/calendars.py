"""The business calendars the sla-engine announces, kept for bringing running clocks forward (domain.live).

Consumed from `sla.calendars.v1` (compacted: a group that starts late still reads every calendar in force)
with the kit's consumer pipeline: the inbox rows and the calendar rows of a batch commit together, so a
redelivered announcement changes nothing. One row per calendar and bundle version, as announced: a clock pinned
to a version counts with that version's hours. A definition larger than reporting keeps is refused before any
effect and set aside with its reason (the pipeline's dead letter), never silently dropped nor half stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache

import sqlalchemy as sa
from faststream import AckPolicy
from faststream.kafka import KafkaRouter
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from reporting import tables
from reporting.domain.live import CalendarKey, Calendars, business_calendar
from slm_shared import topics
from slm_shared.business_time import BusinessCalendar
from slm_shared.consumer import RawRecords, Record, RecordsRefused, keep_raw_bytes, parse_batch
from slm_shared.events import CALENDAR_EVENT, CalendarData
from slm_shared.inbox import Inbox
from slm_shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

# Bounds of one definition: a weekday of every quarter hour, and ten years of daily extra holidays or make-up
# days, are far beyond a real calendar yet small enough to index (the index holds every working interval).
MAX_DEFINITION_BYTES = 256 * 1024
MAX_INTERVALS_PER_DAY = 96
MAX_EXTRA_DAYS = 3_660
# Definitions cached as business calendars: their interval index is built once per year, not per request.
CACHED_CALENDARS = 256


def oversized(record: Record, data: CalendarData) -> str | None:
    """Why a definition is too large to keep, or None."""
    size = len(record.value or b"")
    if size > MAX_DEFINITION_BYTES:
        return f"calendar {data.calendar_id!r}: the record is {size} bytes, more than {MAX_DEFINITION_BYTES}"
    busiest = max(len(day) for day in data.hours)
    if busiest > MAX_INTERVALS_PER_DAY:
        return (f"calendar {data.calendar_id!r}: a weekday has {busiest} working intervals, "
                f"more than {MAX_INTERVALS_PER_DAY}")
    for name, days in (("extra_holidays", data.extra_holidays), ("extra_workdays", data.extra_workdays)):
        if len(days) > MAX_EXTRA_DAYS:
            return f"calendar {data.calendar_id!r}: {len(days)} {name}, more than {MAX_EXTRA_DAYS}"
    return None


async def store_calendars(session: AsyncSession, announced: Sequence[tuple[str, str, CalendarData]],
                          received_at: datetime) -> None:
    """Upsert (tenant, event id, definition) rows; the same calendar and version announced again replaces its
    row (an apply rolled back and redone takes the same version number for another text)."""
    if not announced:
        return
    c = tables.calendars
    # One row per key and statement (ON CONFLICT refuses to touch a row twice): the last announcement wins.
    rows = {(tenant, data.calendar_id, data.bundle_version): {
        "tenant_id": tenant, "calendar_id": data.calendar_id, "bundle_version": data.bundle_version,
        "definition": data.model_dump(mode="json"), "event_id": event_id, "received_at": received_at}
        for tenant, event_id, data in announced}
    statement = insert(c).values(list(rows.values()))
    await session.execute(statement.on_conflict_do_update(
        index_elements=[c.c.tenant_id, c.c.calendar_id, c.c.bundle_version],
        set_={"definition": statement.excluded.definition, "event_id": statement.excluded.event_id,
              "received_at": statement.excluded.received_at}))


@lru_cache(maxsize=CACHED_CALENDARS)
def _calendar(data: CalendarData) -> BusinessCalendar:
    return business_calendar(data)


async def calendars_of(session: AsyncSession, tenant: str, keys: Sequence[CalendarKey]) -> Calendars:
    """The calendars of `keys` that reporting holds; a key it does not hold is left out (domain.live says so)."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    c = tables.calendars
    rows = (await session.execute(
        sa.select(c.c.definition).where(c.c.tenant_id == tenant,
                                        sa.tuple_(c.c.calendar_id, c.c.bundle_version).in_(wanted)))).scalars()
    found: dict[CalendarKey, BusinessCalendar] = {}
    for definition in rows:
        data = CalendarData.model_validate(definition)
        found[(data.calendar_id, data.bundle_version)] = _calendar(data)
    return found


def subscribe_calendars(runtime: ServiceRuntime, now: Callable[[], datetime]) -> KafkaRouter:
    """The subscriber of `sla.calendars.v1`, in a group of its own (it reads the compacted topic from the start
    and never makes the read models' group rebalance)."""
    router = KafkaRouter()
    inbox = Inbox(tables.inbox, "reporting.calendars")

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
        async with runtime.sessions() as session, session.begin():
            fresh = await inbox.first_deliveries(session, batch.events)
            kept = {id(event) for event in fresh}
            await store_calendars(session, [
                (event.tenantid, event.id, data) for event, data in zip(batch.events, batch.data, strict=True)
                if id(event) in kept and isinstance(data, CalendarData)], received_at)
        for event in fresh:
            log.info("calendar %s of bundle version %s kept for tenant %s", event.data.get("calendar_id"),
                     event.data.get("bundle_version"), event.tenantid)
        return list(batch.mark_duplicates(fresh))

    group_id = f"{runtime.group_id}-calendars"
    pipeline = runtime.pipeline(handle, group_id)

    @router.subscriber(
        topics.CALENDARS, group_id=group_id, batch=True, auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR, decoder=keep_raw_bytes, title="calendars",
        description="sla.calendar.v1: the business calendars of each applied bundle, from the sla-engine",
        group_instance_id=runtime.group_instance_id("calendars"),
    )
    async def on_calendar_events(raw: RawRecords) -> None:
        await pipeline(raw)

    return router
