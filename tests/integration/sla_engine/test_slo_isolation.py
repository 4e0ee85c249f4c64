"""The periodic SLO pass isolates failures: a tenant or an SLO that fails is logged, counted and skipped, and
every other tenant and SLO is still evaluated, on the real PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
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

AT = datetime(2026, 11, 10, 12, tzinfo=UTC)
GOOD = """\
slos:
  - {id: api-success, service: api, sli: {type: ratio, sli: requests}, objective: 99.9, window: {rolling: 28d}}
  - {id: p2-resolution, service: email, objective: 95, window: {calendar: month},
     sli: {type: ticket_sla, policy: gold-incidents, metric: resolution}}
"""


def failures() -> float:
    return REGISTRY.get_sample_value("slm_background_failures_total", {"task": "slo evaluation"}) or 0.0


async def evaluated_slos(sessions: async_sessionmaker[AsyncSession], tenant: str) -> list[str]:
    e = tables.slo_evaluations
    async with sessions() as session:
        rows = await session.execute(
            sa.select(e.c.slo_id).where(e.c.tenant_id == tenant, e.c.status.is_not(None)).order_by(e.c.slo_id)
        )
    return list(rows.scalars())


async def test_a_tenant_whose_stored_bundle_fails_does_not_stop_the_others(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    run = uuid.uuid4().hex[:8]
    broken, healthy = f"iso-a-{run}", f"iso-b-{run}"
    async with sessions() as session, session.begin():
        # Stored as text that no longer parses at all (as a bundle damaged in storage would be).
        await SqlBundleRepository(session).add_config(broken, dump_bundle(parse_bundle(GOOD)), "slos: [unclosed")
        await SqlBundleRepository(session).add_config(healthy, dump_bundle(parse_bundle(GOOD)), GOOD)
    keeper = SloKeeper(engine_units(sessions), BundleCache(), Clock(AT), status_interval_seconds=0)
    before = failures()
    assert await keeper.evaluate_all([broken, healthy]) == 2
    assert failures() == before + 1
    assert await evaluated_slos(sessions, healthy) == ["api-success", "p2-resolution"]
    assert await evaluated_slos(sessions, broken) == []


async def test_an_slo_that_fails_is_rolled_back_alone_and_the_tenants_other_slos_are_kept(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant = f"iso-{uuid.uuid4().hex[:8]}"
    async with sessions() as session, session.begin():
        await SqlBundleRepository(session).add_config(tenant, dump_bundle(parse_bundle(GOOD)), GOOD)
        # A clock whose stop time is not a timestamp: reading the ticket SLO's minutes fails in the database.
        await session.execute(
            sa.insert(tables.clocks).values(
                tenant_id=tenant,
                ticket_id="INC-1",
                policy_id="gold-incidents",
                metric="resolution",
                cycle=1,
                policy_version=1,
                state="met",
                breached=False,
                due_at=None,
                updated_at=AT,
                clock={"service": "email", "stopped_at": "not a time"},
            )
        )
    keeper = SloKeeper(engine_units(sessions), BundleCache(), Clock(AT), status_interval_seconds=0)
    before = failures()
    assert await keeper.evaluate_all([tenant]) == 1
    assert failures() == before + 1
    assert await evaluated_slos(sessions, tenant) == ["api-success"]
    # What the SLO evaluated before the failure published (its status, and no_data: it has no traffic) was kept.
    o = tables.outbox
    async with sessions() as session:
        rows = (await session.execute(sa.select(o.c.topic, o.c.payload).where(o.c.key.like(f"{tenant}/%")))).all()
    assert {(row.topic, json.loads(row.payload)["data"]["slo_id"]) for row in rows} == {
        (topics.SLO_STATUS, "api-success"),
        (topics.SLO_ALERTS, "api-success"),
    }
