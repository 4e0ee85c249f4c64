"""The sla-engine with `role: api` answers HTTP from the database alone: ready with PostgreSQL only, clocks of
tickets the consuming deployment stored, keys it announced; and it joins no consumer group (a backlog's work
never runs in its process, so requests never queue behind it)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scripts.localstack import Stack
from sla_engine import tables
from sla_engine.app import create_app
from sla_engine.bundles.cache import BundleCache
from sla_engine.bundles.repository import SqlBundleRepository
from sla_engine.clocks.handlers import ClockKeeper
from sla_engine.domain.bundle import dump_bundle, parse_bundle
from sla_engine.settings import SlaEngineSettings
from sla_engine.unit_of_work import engine_units
from slm_shared.auth import issue_key, store_key
from slm_shared.events import ApiKeyData
from tests.integration.sla_engine.conftest import Clock
from tests.integration.sla_engine.test_clock_sequences import BUNDLE, T0, records
from tests.support.events import ticket_event

pytestmark = pytest.mark.integration


async def test_the_api_role_serves_stored_clocks_with_postgres_alone_and_consumes_nothing(
    stack: Stack,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant = f"api-role-{uuid.uuid4().hex[:8]}"
    group = f"sla-engine-api-role-{uuid.uuid4().hex[:8]}"
    # What the consuming deployment would have stored: the configuration, a ticket's clocks, an announced key.
    async with sessions() as session, session.begin():
        await SqlBundleRepository(session).add_config(tenant, dump_bundle(parse_bundle(BUNDLE)), BUNDLE)
    keeper = ClockKeeper(engine_units(sessions), BundleCache(), Clock(T0 + timedelta(hours=2)))
    await keeper.on_ticket_records(records([ticket_event(tenant, "INC-1", T0)]))
    await keeper.reconcile_due(limit=10, per_tenant=10, budget_seconds=60)
    key = issue_key(tenant)
    async with sessions() as session, session.begin():
        await store_key(
            session,
            tables.api_keys,
            ApiKeyData(key_id=key.key_id, tenant_id=tenant, key_hash=key.key_hash, status="active"),
            datetime.now(UTC),
        )

    settings = SlaEngineSettings(
        database_url=stack.database_urls["sla-engine"],
        role="api",
        log_level="WARNING",
        kafka={"bootstrap_servers": stack.kafka_bootstrap, "group_id": group},
    )
    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=60, shutdown_timeout=30),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://engine.test") as client,
    ):
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.json()["checks"]) == (200, {"postgres": True})
        answer = await client.get(
            "/v1/tickets/INC-1/clocks",
            params={"at": (T0 + timedelta(hours=2)).isoformat()},
            headers={"Authorization": f"Bearer {key.plaintext}"},
        )
        assert answer.status_code == 200, answer.text
        assert [(c["metric"], c["state"], c["elapsed_seconds"]) for c in answer.json()["clocks"]] == [
            ("resolution", "running", 7200)
        ]
        assert (await client.get("/v1/tickets/INC-1/clocks")).status_code == 401  # still needs a key

        admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
        await admin.start()
        try:
            groups = {listed[0] for listed in await admin.list_consumer_groups()}
        finally:
            await admin.close()
        assert not {name for name in groups if name.startswith(group)}
