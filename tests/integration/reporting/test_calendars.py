"""Business calendars from the sla-engine (`sla.calendars.v1`) reach reporting through the kit's consumer pipeline
and bring a running clock on a business calendar to the report's instant; an oversized definition is set aside
with its reason. Reporting in-process on the real broker and database (conftest), the engine's events hand-made.

The calendar (Shanghai, UTC+8): Monday to Friday 09:00-12:00 and 13:00-18:00. A resolution clock started on
Monday 7 December 2026 at 11:30 and still running at 14:15 has run 11:30-12:00 (1,800 s) and 13:00-14:15
(4,500 s) of working time: 6,300 s, over lunch.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from reporting import tables
from slm_shared import topics
from slm_shared.db import create_engine
from slm_shared.events import CALENDAR_EVENT, CalendarData, CloudEvent, make_event
from tests.integration.reporting.conftest import Reporting
from tests.integration.reporting.events import clock_event, local
from tests.support.poison import eventually, set_aside_rows

pytestmark = pytest.mark.integration

WORKDAY = ((9 * 3600, 12 * 3600), (13 * 3600, 18 * 3600))
DECEMBER_7 = {"from": "2026-12-07T00:00:00+08:00", "to": "2026-12-08T00:00:00+08:00", "format": "json"}


def calendar_event(
    tenant: str, version: int, extra_holidays: tuple[date, ...] = (), event_id: str | None = None
) -> CloudEvent:
    data = CalendarData(
        calendar_id="cn-office",
        bundle_version=version,
        timezone="Asia/Shanghai",
        hours=(WORKDAY,) * 5 + ((), ()),
        extra_holidays=extra_holidays,
    )
    return make_event(
        event_id=event_id or f"calendar:cn-office@{version}",
        source="slm://sla-engine",
        event_type=CALENDAR_EVENT,
        time=local("12-01 09:00"),
        tenant_id=tenant,
        subject="cn-office",
        data=data,
    )


async def test_a_running_clock_on_an_announced_calendar_is_reported_at_the_instant_and_an_oversized_one_set_aside(
    reporting: Reporting,
) -> None:
    tenant = await reporting.tenant("calendars")
    group = f"{reporting.app.state.runtime.group_id}-calendars"  # type: ignore[attr-defined]
    key = topics.calendar_key(tenant.name, "cn-office").encode()
    good = calendar_event(tenant.name, 3)
    # 3,661 extra holidays: one more than reporting keeps (reporting.calendars.MAX_EXTRA_DAYS).
    oversized = calendar_event(tenant.name, 4, tuple(date(2030, 1, 1) + timedelta(days=n) for n in range(3_661)))
    for event in (good, good, oversized):  # the repeat is one event to the inbox
        await reporting.producer.send(topics.CALENDARS, event.to_json_bytes(), key=key)
    await reporting.producer.flush()

    engine = create_engine(reporting.stack.database_urls["reporting"], pool_size=1)

    async def refused_records() -> list[sa.Row[tuple[object, ...]]]:
        return [r for r in await set_aside_rows(engine, group) if r.tenant_id == tenant.name]

    async def stored() -> bool:
        async with reporting.sessions() as session:
            versions = (
                (
                    await session.execute(
                        sa.select(tables.calendars.c.bundle_version).where(tables.calendars.c.tenant_id == tenant.name)
                    )
                )
                .scalars()
                .all()
            )
        return list(versions) == [3] and len(await refused_records()) == 1

    try:
        await eventually(stored, "version 3 kept, version 4 set aside")
        [refused] = await refused_records()
    finally:
        await engine.dispose()
    assert refused.topic == topics.CALENDARS
    assert "3661 extra_holidays, more than 3660" in refused.reason

    started = local("12-07 11:30")
    running = [
        clock_event(
            tenant.name,
            "INC-CAL-1",
            "started",
            started,
            metric="resolution",
            state="running",
            elapsed=0,
            priority="P2",
            started_at=started,
            calendar="cn-office",
            version=3,
        ),
        # Pinned to a version whose calendar never arrived: shown as of its last transition.
        clock_event(
            tenant.name,
            "INC-CAL-2",
            "started",
            started,
            metric="resolution",
            state="running",
            elapsed=0,
            priority="P2",
            started_at=started,
            calendar="cn-office",
            version=4,
        ),
    ]
    await reporting.publish(running)
    await reporting.wait_applied(tenant.name, len(running))
    reporting.clock.pinned = local("12-07 14:15")
    try:
        answer = await tenant.get("/v1/reports/slr", **DECEMBER_7)
    finally:
        reporting.clock.pinned = None
    assert answer.status_code == 200, answer.text
    clocks = {c["ticket_id"]: c for c in answer.json()["clocks"]}
    assert {k: clocks["INC-CAL-1"][k] for k in ("elapsed_seconds", "remaining_seconds", "live")} == {
        "elapsed_seconds": 6_300,
        "remaining_seconds": 28_800 - 6_300,
        "live": True,
    }
    assert {k: clocks["INC-CAL-2"][k] for k in ("elapsed_seconds", "live")} == {"elapsed_seconds": 0, "live": False}
