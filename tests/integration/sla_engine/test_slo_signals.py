"""Service SLOs against the real PostgreSQL: signals in, rollups stored, status and alerts out via the outbox."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sla_engine import tables
from sla_engine.bundles.cache import BundleCache
from sla_engine.bundles.repository import SqlBundleRepository
from sla_engine.domain.bundle import dump_bundle, parse_bundle
from sla_engine.slos.handlers import SloKeeper
from sla_engine.unit_of_work import engine_units
from slm_shared import topics
from tests.integration.sla_engine.conftest import Clock

pytestmark = pytest.mark.integration

BUNDLE = """\
slos:
  - id: email-availability
    service: email
    sli: {type: availability}
    objective: 99.9
    window: {calendar: month}
  - id: api-success
    service: api
    sli: {type: ratio, sli: requests}
    objective: 99.9
    window: {rolling: 28d}
  - id: p2-resolution
    service: email
    sli: {type: ticket_sla, policy: gold-incidents, metric: resolution, priorities: [P2]}
    objective: 95
    window: {calendar: month}
  - id: api-latency
    service: api
    sli: {type: threshold, sli: latency_ms, op: "<=", value: 300}
    objective: 99
    window: {rolling: 28d}
"""


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
async def tenant(sessions: async_sessionmaker[AsyncSession]) -> str:
    tenant_id = f"slo-{uuid.uuid4().hex[:8]}"
    async with sessions() as session, session.begin():
        await SqlBundleRepository(session).add_config(tenant_id, dump_bundle(parse_bundle(BUNDLE)), BUNDLE)
    return tenant_id


def record(
    tenant: str, event_type: str, time: datetime, data: dict[str, Any], event_id: str | None = None
) -> ConsumerRecord[bytes, bytes]:
    event = {
        "specversion": "1.0",
        "id": event_id or uuid.uuid4().hex,
        "source": "probe://test",
        "type": event_type,
        "time": time.isoformat(),
        "tenantid": tenant,
        "subject": data["service"],
        "data": data,
    }
    value = json.dumps(event).encode()
    return ConsumerRecord(topics.SIGNALS, 0, 0, 0, 0, None, value, None, 0, len(value), [])


def availability(tenant: str, time: str, state: str) -> ConsumerRecord[bytes, bytes]:
    return record(
        tenant,
        "itsm.availability.v1",
        utc(time),
        {"service": "email", "component": "smtp", "state": state},
        event_id=f"av-{time}",
    )


def window(tenant: str, end: datetime, good: int, total: int = 1_000) -> ConsumerRecord[bytes, bytes]:
    return record(
        tenant,
        "itsm.measurement.v1",
        end,
        {
            "service": "api",
            "sli": "requests",
            "window_start": (end - timedelta(minutes=1)).isoformat(),
            "window_end": end.isoformat(),
            "good": good,
            "total": total,
        },
    )


async def published(sessions: async_sessionmaker[AsyncSession], tenant: str) -> list[tuple[str, dict[str, Any]]]:
    o = tables.outbox
    async with sessions() as session:
        rows = await session.execute(
            sa.select(o.c.topic, o.c.payload).where(o.c.key.like(f"{tenant}/%")).order_by(o.c.id)
        )
    return [(row.topic, json.loads(row.payload)) for row in rows]


async def test_an_outage_a_late_maintenance_window_and_redelivery(
    sessions: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    clock = Clock(utc("2026-11-10T12:00:00"))
    keeper = SloKeeper(engine_units(sessions), BundleCache(), clock, status_interval_seconds=0)
    batch = [
        availability(tenant, "2026-11-01T00:00:00", "up"),
        availability(tenant, "2026-11-10T10:00:00", "down"),
        availability(tenant, "2026-11-10T10:40:00", "up"),
    ]
    await keeper.on_signal_records(batch)
    statuses = [data["data"] for topic, data in await published(sessions, tenant) if topic == topics.SLO_STATUS]
    email = [status for status in statuses if status["slo_id"] == "email-availability"]
    assert len(email) == 1
    # 9 days 12 hours of data so far; 40 minutes down; budget 0.1 % of the 30-day November.
    assert email[0]["total"] == 820_800
    assert email[0]["good"] == 820_800 - 2_400
    assert email[0]["error_budget_total"] == pytest.approx(2_592)
    assert email[0]["error_budget_remaining"] == pytest.approx(192)

    # 2,400 s down in the last 2 h and 1 d: burn rates of 333x and 27.8x open a ticket (the last 1 h is clean).
    alerts = [
        (data["data"]["alert"], data["data"]["state"])
        for topic, data in await published(sessions, tenant)
        if topic == topics.SLO_ALERTS
    ]
    assert alerts == [("ticket", "firing")]

    before = await published(sessions, tenant)
    await keeper.on_signal_records(batch)  # redelivered: no new effect, no new event
    assert await published(sessions, tenant) == before

    late = record(
        tenant,
        "itsm.maintenance.v1",
        utc("2026-11-09T08:00:00"),
        {
            "service": "email",
            "window_id": "chg-77",
            "start": "2026-11-10T10:00:00+00:00",
            "end": "2026-11-10T10:30:00+00:00",
            "status": "scheduled",
        },
    )
    await keeper.on_signal_records([late])
    email = [
        data["data"]
        for topic, data in await published(sessions, tenant)
        if topic == topics.SLO_STATUS and data["data"]["slo_id"] == "email-availability"
    ]
    assert len(email) == 2
    assert email[-1]["total"] == 820_800 - 1_800
    assert email[-1]["error_budget_total"] == pytest.approx(2_590.2)
    assert email[-1]["error_budget_remaining"] == pytest.approx(2_590.2 - 600)


async def test_a_fast_burn_pages_once_and_resolves_once(
    sessions: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    start = utc("2026-11-10T11:00:00")
    clock = Clock(utc("2026-11-10T12:00:00"))
    keeper = SloKeeper(engine_units(sessions), BundleCache(), clock, status_interval_seconds=0)
    # One hour at 2 % errors: a 20x burn, over the 28-day page factor 13.44 on 1h and 5m.
    await keeper.on_signal_records([window(tenant, start + timedelta(minutes=m + 1), 980) for m in range(60)])
    clock.at = utc("2026-11-10T12:30:00")
    await keeper.on_signal_records([window(tenant, clock.at - timedelta(minutes=29 - m), 1_000) for m in range(30)])
    await keeper.evaluate_all([tenant])
    await keeper.evaluate_all([tenant])
    alerts = [
        (data["data"]["alert"], data["data"]["state"])
        for topic, data in await published(sessions, tenant)
        if topic == topics.SLO_ALERTS and data["data"]["slo_id"] == "api-success"
    ]
    assert alerts.count(("page", "firing")) == 1
    assert alerts.count(("page", "resolved")) == 1
    assert alerts.index(("page", "firing")) < alerts.index(("page", "resolved"))
    assert ("budget_exhausted", "firing") in alerts


async def test_latency_samples_count_against_a_threshold_slo(
    sessions: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    clock = Clock(utc("2026-11-10T12:00:00"))
    keeper = SloKeeper(engine_units(sessions), BundleCache(), clock, status_interval_seconds=0)
    samples = [
        record(
            tenant,
            "itsm.measurement.v1",
            utc("2026-11-10T11:58:00") + timedelta(seconds=second),
            {"service": "api", "sli": "latency_ms", "value": value},
        )
        for second, value in enumerate([120.0, 300.0, 300.5, 95.0])
    ]
    await keeper.on_signal_records(samples)
    latency = [
        data["data"]
        for topic, data in await published(sessions, tenant)
        if topic == topics.SLO_STATUS and data["data"]["slo_id"] == "api-latency"
    ]
    assert (latency[-1]["good"], latency[-1]["total"]) == (3, 4)
    assert latency[-1]["sli_value"] == pytest.approx(75)


async def test_ticket_sla_attainment_counts_stopped_clocks(
    sessions: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    def clock(ticket: str, state: str, priority: str, stopped_at: str) -> dict[str, Any]:
        return {
            "tenant_id": tenant,
            "ticket_id": ticket,
            "policy_id": "gold-incidents",
            "metric": "resolution",
            "cycle": 1,
            "policy_version": 1,
            "state": state,
            "breached": state == "breached",
            "due_at": None,
            "updated_at": utc(stopped_at),
            "clock": {"service": "email", "priority": priority, "stopped_at": f"{stopped_at}+00:00"},
        }

    async with sessions() as session, session.begin():
        await session.execute(
            sa.insert(tables.clocks),
            [
                clock("INC-1", "met", "P2", "2026-11-03T10:00:00"),
                clock("INC-2", "met", "P2", "2026-11-04T10:00:00"),
                clock("INC-3", "breached", "P2", "2026-11-05T10:00:00"),
                clock("INC-4", "breached", "P1", "2026-11-05T11:00:00"),  # another priority
                clock("INC-5", "running", "P2", "2026-11-05T12:00:00"),  # not stopped
                clock("INC-6", "met", "P2", "2026-10-30T10:00:00"),
            ],
        )  # last month
    keeper = SloKeeper(
        engine_units(sessions), BundleCache(), Clock(utc("2026-11-10T12:00:00")), status_interval_seconds=0
    )
    await keeper.evaluate_all([tenant])
    attainment = [
        data["data"]
        for topic, data in await published(sessions, tenant)
        if topic == topics.SLO_STATUS and data["data"]["slo_id"] == "p2-resolution"
    ]
    assert (attainment[-1]["good"], attainment[-1]["total"]) == (2, 3)
    assert attainment[-1]["error_budget_total"] == pytest.approx(0.15)  # 5 % of 3 tickets
    alerts = {
        data["data"]["alert"]
        for topic, data in await published(sessions, tenant)
        if topic == topics.SLO_ALERTS and data["data"]["slo_id"] == "p2-resolution"
    }
    assert alerts == {"budget_exhausted"}


HOURS_BUNDLE = """\
calendars:
  - {name: office, timezone: UTC, hours: {mon-fri: ["09:00-17:00"]}}
slos:
  - id: email-week
    service: email
    sli: {type: availability}
    objective: 99.9
    window: {rolling: 7d}
  - id: email-office-hours
    service: email
    sli: {type: availability, calendar: office}
    objective: 99.9
    window: {rolling: 7d}
"""

SUNDAY_MAINTENANCE = HOURS_BUNDLE.replace(
    """\
    sli: {type: availability}
""",
    """\
    sli:
      type: availability
      maintenance:
        - {rrule: "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2", dtstart: "2026-01-04T02:00", duration: 2h,
           timezone: Europe/Berlin}
""",
)


async def apply(sessions: async_sessionmaker[AsyncSession], tenant: str, text: str) -> None:
    async with sessions() as session, session.begin():
        await SqlBundleRepository(session).add_config(tenant, dump_bundle(parse_bundle(text)), text)


async def test_a_recurring_window_added_later_corrects_the_minutes_already_stored(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant = f"slo-{uuid.uuid4().hex[:8]}"
    await apply(sessions, tenant, HOURS_BUNDLE)
    keeper = SloKeeper(
        engine_units(sessions), BundleCache(), Clock(utc("2026-01-12T00:00:00")), status_interval_seconds=0
    )
    await keeper.on_signal_records(
        [
            availability(tenant, "2026-01-01T00:00:00", "up"),
            availability(tenant, "2026-01-07T10:00:00", "down"),
            availability(tenant, "2026-01-07T10:10:00", "up"),
            availability(tenant, "2026-01-11T02:00:00", "down"),
            availability(tenant, "2026-01-11T02:30:00", "up"),
        ]
    )

    def latest(found: list[tuple[str, dict[str, Any]]], slo_id: str) -> dict[str, Any]:
        statuses: list[dict[str, Any]] = [
            data["data"] for topic, data in found if topic == topics.SLO_STATUS and data["data"]["slo_id"] == slo_id
        ]
        return statuses[-1]

    week = latest(await published(sessions, tenant), "email-week")
    # 5-12 January, 604,800 s with data: 600 s down on Wednesday, 1,800 s on Sunday 02:00-02:30Z.
    assert (week["total"], week["good"]) == (604_800, 602_400)
    assert week["error_budget_total"] == pytest.approx(604.8)
    office = latest(await published(sessions, tenant), "email-office-hours")
    # Service hours: Monday 5 to Friday 9 January, 5 x 8 h = 144,000 s; only Wednesday's 600 s are in them.
    assert (office["total"], office["good"]) == (144_000, 143_400)
    assert office["error_budget_total"] == pytest.approx(144.0)

    # The Sunday window becomes planned maintenance in a new version: no new signal, the same stored minutes.
    await apply(sessions, tenant, SUNDAY_MAINTENANCE)
    await keeper.evaluate_all([tenant])
    week = latest(await published(sessions, tenant), "email-week")
    # 01:00Z-03:00Z on 11 January (02:00 CET) is out of both sides: 604,800 - 7,200 = 597,600 s agreed.
    assert (week["total"], week["good"]) == (597_600, 597_000)
    assert week["error_budget_total"] == pytest.approx(597.6)
    assert week["error_budget_remaining"] == pytest.approx(-2.4)
    a = tables.slo_availability_minutes
    async with sessions() as session:
        stored_down = (
            await session.execute(sa.select(sa.func.sum(a.c.down_seconds)).where(a.c.tenant_id == tenant))
        ).scalar_one()
    assert stored_down == 2_400  # the rollups keep what the signals said; the exclusion is the bundle's

    version, readings = await keeper.readings(tenant)
    assert version == 2
    by_id = {reading.slo.id: reading for reading in readings}
    assert by_id["email-week"].status.error_budget_consumed == 600
    assert set(by_id["email-week"].alerts) == {"budget_exhausted"}  # 600 s against 597.6 s of budget
    assert by_id["email-office-hours"].status.error_budget_remaining == Decimal("-456.0")  # 144 - 600
    assert (await keeper.readings(tenant, "email-office-hours"))[1][0].slo.id == "email-office-hours"
    assert (await keeper.readings(tenant, "nothing"))[1] == []
    assert await keeper.readings(f"none-{uuid.uuid4().hex[:8]}") == (None, [])
