"""The business calendars reporting holds, as the live figures need them (running clocks brought forward)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import sqlalchemy as sa

from reporting import tables
from reporting.domain.live import CalendarKey, Calendars, business_calendar
from slm_shared.events import CalendarData

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncSession

    from slm_shared.business_time import BusinessCalendar

# Definitions cached as business calendars: their interval index is built once per year, not per request.
CACHED_CALENDARS = 256


@lru_cache(maxsize=CACHED_CALENDARS)
def _calendar(data: CalendarData) -> BusinessCalendar:
    return business_calendar(data)


async def calendars_of(session: AsyncSession, tenant: str, keys: Sequence[CalendarKey]) -> Calendars:
    """The calendars of `keys` that reporting holds; a key it does not hold is left out (domain.live says so)."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    c = tables.calendars
    rows = (
        await session.execute(
            sa.select(c.c.definition).where(
                c.c.tenant_id == tenant, sa.tuple_(c.c.calendar_id, c.c.bundle_version).in_(wanted)
            )
        )
    ).scalars()
    found: dict[CalendarKey, BusinessCalendar] = {}
    for definition in rows:
        data = CalendarData.model_validate(definition)
        found[(data.calendar_id, data.bundle_version)] = _calendar(data)
    return found
