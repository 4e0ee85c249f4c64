"""Threshold SLIs against the real PostgreSQL: samples are kept, and a threshold added by a later bundle version
is backfilled from them when the version is applied (docs/slo.md "Threshold samples and backfill")."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sla_engine import tables
from sla_engine.bundles.cache import BundleCache
from sla_engine.bundles.lifecycle import ConfigService
from sla_engine.clocks.handlers import ClockKeeper
from sla_engine.slos.handlers import SloKeeper
from sla_engine.unit_of_work import engine_units
from slm_shared import topics
from tests.integration.sla_engine.conftest import Clock

pytestmark = pytest.mark.integration

LENIENT = """\
slos:
  - id: api-latency
    service: api
    sli: {type: threshold, sli: latency_ms, op: "<=", value: 300}
    objective: 99
    window: {rolling: 28d}
"""

STRICT = (
    LENIENT
    + """\
  - id: api-latency-strict
    service: api
    sli: {type: threshold, sli: latency_ms, op: "<=", value: 250}
    objective: 99
    window: {rolling: 28d}
"""
)

SERIES_300 = "threshold:latency_ms<=300"
SERIES_250 = "threshold:latency_ms<=250"
NOW = datetime(2026, 11, 10, 12, 5, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(f"2026-11-10T{text}").replace(tzinfo=UTC)


@pytest.fixture
def tenant() -> str:
    return f"slo-{uuid.uuid4().hex[:8]}"


def sample(
    tenant: str,
    time: datetime,
    value: float,
    *,
    service: str = "api",
    sli: str = "latency_ms",
    event_id: str | None = None,
) -> ConsumerRecord[bytes, bytes]:
    event = {
        "specversion": "1.0",
        "id": event_id or uuid.uuid4().hex,
        "source": "probe://test",
        "type": "itsm.measurement.v1",
        "time": time.isoformat(),
        "tenantid": tenant,
        "subject": service,
        "data": {"service": service, "sli": sli, "value": value},
    }
    payload = json.dumps(event).encode()
    return ConsumerRecord(topics.SIGNALS, 0, 0, 0, 0, None, payload, None, 0, len(payload), [])


async def apply(sessions: async_sessionmaker[AsyncSession], tenant: str, text: str) -> None:
    bundles = BundleCache()
    units = engine_units(sessions)
    await ConfigService(units, bundles, ClockKeeper(units, bundles)).apply(tenant, text, "yaml", "none", NOW)


async def series(sessions: async_sessionmaker[AsyncSession], tenant: str, sli: str) -> dict[str, tuple[int, int]]:
    """The series' rollup rows as {"HH:MM": (good, total)}."""
    r = tables.slo_ratio_minutes
    async with sessions() as session:
        rows = await session.execute(
            sa.select(r.c.minute, r.c.good, r.c.total)
            .where(r.c.tenant_id == tenant, r.c.service == "api", r.c.sli == sli)
            .order_by(r.c.minute)
        )
    return {row.minute.astimezone(UTC).strftime("%H:%M"): (row.good, row.total) for row in rows}


async def counts(keeper: SloKeeper, tenant: str, slo_id: str) -> tuple[int, int]:
    """The SLO's good and total events now, read as the HTTP API does."""
    _, readings = await keeper.readings(tenant, slo_id)
    status = readings[0].status
    assert status.good == int(status.good)
    assert status.total == int(status.total)
    return int(status.good), int(status.total)


async def test_a_threshold_added_later_is_backfilled_from_the_samples_once(
    sessions: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    await apply(sessions, tenant, LENIENT)
    keeper = SloKeeper(engine_units(sessions), BundleCache(), Clock(NOW), status_interval_seconds=0)
    redelivered = sample(tenant, at("11:58:40"), 250.5, event_id="dup-1")
    await keeper.on_signal_records(
        [
            sample(tenant, at("11:58:00"), 120.0),
            sample(tenant, at("11:58:20"), 250.0),
            redelivered,
            sample(tenant, at("11:59:00"), 300.0),
            sample(tenant, at("11:59:30"), 300.5),
            sample(tenant, at("11:59:59.999999"), 249.99999999999997),
            sample(tenant, at("12:01:30"), 95.0),
            sample(tenant, at("12:01:59"), 251.0),
            sample(tenant, at("11:58:10"), 10.0, sli="cpu_percent"),  # another SLI
            sample(tenant, at("11:58:10"), 10.0, service="email"),  # another service
        ]
    )
    await keeper.on_signal_records([redelivered])  # counted and stored once
    assert await series(sessions, tenant, SERIES_300) == {"11:58": (3, 3), "11:59": (2, 3), "12:01": (2, 2)}
    assert await series(sessions, tenant, SERIES_250) == {}
    s = tables.slo_samples
    async with sessions() as session:
        kept = (
            await session.execute(
                sa.select(s.c.value).where(s.c.tenant_id == tenant, s.c.time == at("11:59:59.999999"))
            )
        ).scalar_one()
    assert kept == Decimal("249.99999999999997")  # exact: the float's shortest repr, not a binary approximation

    await apply(sessions, tenant, STRICT)
    # Hand count against <= 250 of the eight api latency samples:
    #   11:58  120 yes, 250 yes (equal holds), 250.5 no                    -> 2 of 3
    #   11:59  300 no, 300.5 no, 249.99999999999997 yes (at 11:59:59.999999) -> 1 of 3
    #   12:01  95 yes, 251 no                                              -> 1 of 2
    # 4 good of 8; the cpu_percent and email samples are other series.
    backfilled = {"11:58": (2, 3), "11:59": (1, 3), "12:01": (1, 2)}
    assert await series(sessions, tenant, SERIES_250) == backfilled
    assert await counts(keeper, tenant, "api-latency-strict") == (4, 8)
    assert await counts(keeper, tenant, "api-latency") == (7, 8)  # the kept series is untouched

    await apply(sessions, tenant, STRICT)  # re-applied: nothing is counted twice
    assert await series(sessions, tenant, SERIES_250) == backfilled
    assert await counts(keeper, tenant, "api-latency-strict") == (4, 8)

    # Configured now: a new sample counts on arrival for both thresholds.
    await keeper.on_signal_records([sample(tenant, at("12:02:00"), 200.0)])
    assert await counts(keeper, tenant, "api-latency-strict") == (5, 9)
    assert await counts(keeper, tenant, "api-latency") == (8, 9)

    # Dropped, then added back: the sample that arrived in between (260, bad against 250) is backfilled too.
    await apply(sessions, tenant, LENIENT)
    await keeper.on_signal_records([sample(tenant, at("12:03:00"), 260.0)])
    await apply(sessions, tenant, STRICT)
    assert await series(sessions, tenant, SERIES_250) == {**backfilled, "12:02": (1, 1), "12:03": (0, 1)}
    assert await counts(keeper, tenant, "api-latency-strict") == (5, 10)
    assert await counts(keeper, tenant, "api-latency") == (9, 10)


async def test_the_first_version_of_a_tenant_is_backfilled_from_samples_that_came_before_it(
    sessions: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    keeper = SloKeeper(engine_units(sessions), BundleCache(), Clock(NOW), status_interval_seconds=0)
    await keeper.on_signal_records([sample(tenant, at("11:00:05"), 301.0), sample(tenant, at("11:00:55"), 7.5)])
    await apply(sessions, tenant, LENIENT)
    assert await series(sessions, tenant, SERIES_300) == {"11:00": (1, 2)}


async def test_samples_past_retention_are_purged_at_a_whole_minute(
    sessions: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    # Long before any other test's data, so the global purge touches only this tenant's samples.
    now = datetime(2019, 12, 31, 0, 0, 30, tzinfo=UTC)
    keeper = SloKeeper(
        engine_units(sessions), BundleCache(), Clock(now), status_interval_seconds=0, sample_retention_days=100
    )
    cutoff_minute = now - timedelta(days=100, seconds=30)  # 2019-09-22T00:00Z
    await keeper.on_signal_records(
        [
            sample(tenant, cutoff_minute - timedelta(seconds=1), 1.0, event_id="old"),
            sample(tenant, cutoff_minute + timedelta(seconds=10), 1.0, event_id="same-minute"),
            sample(tenant, now, 1.0, event_id="new"),
        ]
    )
    assert await keeper.purge_samples() >= 1
    s = tables.slo_samples
    async with sessions() as session:
        kept = set((await session.execute(sa.select(s.c.event_id).where(s.c.tenant_id == tenant))).scalars())
    assert kept == {"same-minute", "new"}  # 30 s short of 100 days old, and its minute stays whole
