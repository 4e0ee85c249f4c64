"""A bundle apply announces each of its calendars (`sla.calendar.v1` on `sla.calendars.v1`) through the outbox, in
the apply's transaction: a bundle refused writes none, a version applied writes one per calendar."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sla_engine import tables
from sla_engine.bundles.cache import BundleCache
from sla_engine.bundles.lifecycle import ConfigService
from sla_engine.clocks.handlers import ClockKeeper
from sla_engine.domain.bundle import BundleError
from sla_engine.unit_of_work import engine_units
from slm_shared import topics
from slm_shared.events import CALENDAR_EVENT, CalendarData

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
BUNDLE = """
calendars:
  - name: cn-business
    timezone: Asia/Shanghai
    hours: {mon-fri: ["09:00-12:00", "13:00-18:00"]}
    holidays: {country: CN}
    extra_workdays: {"2026-10-10": fri}
  - name: uk-office
    timezone: Europe/London
    hours: {mon-fri: ["08:30-17:30"]}
    extra_holidays: ["2026-12-24"]
policies:
  - id: gold
    name: Gold
    agreement: SLA
    match: {kind: incident}
    metrics:
      - metric: response
        calendar: cn-business
        targets: {P2: 1h}
        stop: {actions: [agent_replied]}
"""


async def announced(sessions: async_sessionmaker[AsyncSession], tenant: str) -> list[tuple[str, dict[str, Any]]]:
    o = tables.outbox
    async with sessions() as session:
        rows = await session.execute(
            sa.select(o.c.key, o.c.payload)
            .where(o.c.topic == topics.CALENDARS, o.c.key.like(f"{tenant}/%"))
            .order_by(o.c.id)
        )
    return [(row.key, json.loads(row.payload)) for row in rows]


async def test_each_applied_version_announces_its_calendars_and_a_refused_bundle_none(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant = f"cal-{uuid.uuid4().hex[:8]}"
    bundles = BundleCache()
    config = ConfigService(engine_units(sessions), bundles, ClockKeeper(engine_units(sessions), bundles))
    with pytest.raises(BundleError):
        await config.apply(tenant, BUNDLE.replace("Asia/Shanghai", "Asia/Nowhere"), "yaml", "none", NOW)
    assert await announced(sessions, tenant) == []

    await config.apply(tenant, BUNDLE, "yaml", "none", NOW)
    await config.apply(tenant, BUNDLE, "yaml", "none", NOW)  # version 2: announced again, under its own id
    events = await announced(sessions, tenant)
    assert [(key, event["id"]) for key, event in events] == [
        (f"{tenant}/cn-business", "calendar:cn-business@1"),
        (f"{tenant}/uk-office", "calendar:uk-office@1"),
        (f"{tenant}/cn-business", "calendar:cn-business@2"),
        (f"{tenant}/uk-office", "calendar:uk-office@2"),
    ]
    assert {event["type"] for _, event in events} == {CALENDAR_EVENT}
    assert {event["tenantid"] for _, event in events} == {tenant}
    cn = CalendarData.model_validate(events[0][1]["data"])
    assert (cn.calendar_id, cn.bundle_version, cn.timezone, cn.holidays_country) == (
        "cn-business",
        1,
        "Asia/Shanghai",
        "CN",
    )
    assert cn.hours == (((9 * 3600, 12 * 3600), (13 * 3600, 18 * 3600)),) * 5 + ((), ())
    assert cn.extra_workdays == ((date(2026, 10, 10), 4),)
    uk = CalendarData.model_validate(events[1][1]["data"])
    assert (uk.hours[0], uk.extra_holidays) == (((8 * 3600 + 1800, 17 * 3600 + 1800),), (date(2026, 12, 24),))
