"""Which signals the engine takes: one that could count in no window kept, or whose instants or names storage
cannot hold, is refused with a reason before anything is computed or stored (the consumer sets it aside).

Without this rule an availability signal timed in 1900 makes the engine rebuild one availability row per minute
from 1900 to now, a year-1 instant with a `+01:00` offset overflows converting to UTC, and a 512-character
four-byte service name makes an index entry PostgreSQL refuses; each would otherwise fail its batch forever.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ValidationError

from slm_shared.events import (
    AVAILABILITY_EVENT,
    MAINTENANCE_EVENT,
    AvailabilityData,
    CloudEvent,
    MaintenanceData,
    MeasurementData,
)

# Several names share one btree index entry (the series index holds tenant, service and sli), and PostgreSQL caps
# an entry at 2,704 bytes: 200 bytes a name and 512 for an event's source and id keep every key well below it.
MAX_NAME_BYTES = 200
MAX_ID_BYTES = 512
# Instants are moved by minutes and days (rollups, windows): two years short of `datetime.max` leaves room.
LATEST = datetime(9998, 1, 1, tzinfo=UTC)


def signal_refusal(event: CloudEvent, now: datetime, horizon: timedelta) -> str | None:
    """Why `event` (an availability, maintenance or measurement signal) is refused, or None to take it.

    `horizon`: how far back an availability signal or a maintenance window's start may lie (the sample
    retention): older, it counts in no window kept, and the availability minutes would be rebuilt from there.
    """
    for field, value in (("source", event.source), ("id", event.id)):
        if len(value.encode()) > MAX_ID_BYTES:
            return f"{field}: longer than {MAX_ID_BYTES} bytes in UTF-8"
    data: BaseModel
    instants: dict[str, datetime | None]
    since: dict[str, datetime | None]
    try:
        if event.type == AVAILABILITY_EVENT:
            data = AvailabilityData.model_validate(event.data)
            names = {"service": data.service, "component": data.component}
            instants = {"time": event.time}
            since = {"time": event.time}
        elif event.type == MAINTENANCE_EVENT:
            data = MaintenanceData.model_validate(event.data)
            names = {"service": data.service, "window_id": data.window_id}
            instants = {"time": event.time, "start": data.start, "end": data.end}
            since = {"start": data.start}
        else:
            data = MeasurementData.model_validate(event.data)
            names = {"service": data.service, "sli": data.sli}
            instants = {"time": event.time, "window_start": data.window_start, "window_end": data.window_end}
            since = {}  # one sample or ratio row whatever its age; the retention purge takes the old ones
    except ValidationError as error:
        return f"data: {error.errors()[0]['msg']}"[:500]
    for name, text in names.items():
        if len(text.encode()) > MAX_NAME_BYTES:
            return f"data.{name}: longer than {MAX_NAME_BYTES} bytes in UTF-8"
    for name, at in instants.items():
        if at is None:
            continue
        try:
            utc = at.astimezone(UTC)
        except OverflowError:
            return f"{name}: {at.isoformat()} is outside the range of UTC instants"
        if utc >= LATEST:
            return f"{name}: {at.isoformat()} is after {LATEST.year - 1}"
    earliest = now - horizon
    for name, at in since.items():
        if at is not None and at < earliest:
            return (
                f"{name}: {at.isoformat()} is more than {horizon.days} days old (the sample retention): it can "
                "count in no window kept"
            )
    return None
