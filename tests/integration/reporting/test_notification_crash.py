"""Reporting killed (SIGKILL) while it delivers: after a restart every notification is delivered, each row is
sent exactly once in the delivery log, and the only repeats a receiver sees carry a `webhook-id` it already
has (the in-flight batches of the killed process: at-least-once, deduplicated by the id the spec provides).

Reporting runs as a real process; the notifications are written straight into its table (planning them from
Kafka is what test_notifications.py proves), due now, as `stopped_breached` (a fact that needs no clock in the
read model), for a receiver slow enough to be mid-way when killed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa

from reporting import tables
from scripts.localstack import Stack
from scripts.processes import ServiceProcess
from slm_shared.auth import issue_key, store_key
from slm_shared.db import create_engine, session_factory
from slm_shared.events import ApiKeyData
from tests.integration.reporting.receivers import running_receivers

pytestmark = pytest.mark.integration

COUNT = 400
log = logging.getLogger(__name__)


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], what: str, within: float = 120.0
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {what}")


async def test_killing_reporting_during_delivery_loses_nothing_and_logs_each_once(stack: Stack) -> None:
    tenant = f"crash-{uuid.uuid4().hex[:10]}"
    engine = create_engine(stack.database_urls["reporting"], pool_size=2)
    sessions = session_factory(engine)
    key = issue_key(tenant)
    now = datetime.now(UTC)
    async with running_receivers() as receivers:
        receivers.delay_seconds = 0.1
        async with sessions() as session, session.begin():
            await store_key(
                session,
                tables.api_keys,
                ApiKeyData(key_id=key.key_id, tenant_id=tenant, key_hash=key.key_hash, status="active"),
                now,
            )
        service = ServiceProcess(
            "reporting",
            stack,
            name="reporting-notification-crash",
            kafka__group_id=f"reporting-crash-{uuid.uuid4().hex[:8]}",
            consumer_offset_reset="latest",
            period_close_enabled="false",
            notification_poll_seconds="0.2",
            notification_batch="20",
            notification_batches_in_flight="2",
        ).start()
        try:
            async with httpx.AsyncClient(base_url=service.url) as client:
                answer = await client.put(
                    "/v1/notification-policies",
                    headers={"Authorization": f"Bearer {key.plaintext}"},
                    json={
                        "channels": [{"name": "desk", "type": "webhook", "url": f"{receivers.base_url}/hook"}],
                        "rules": [{"id": "all-breaches", "triggers": ["breached"], "channel": "desk"}],
                    },
                )
                assert answer.status_code == 200, answer.text
            async with sessions() as session, session.begin():
                await session.execute(
                    sa.insert(tables.notifications),
                    [
                        {
                            "id": f"ntf_{tenant}_{n:04d}",
                            "tenant_id": tenant,
                            "idempotency_key": f"k/{n}",
                            "ladder_key": f"l/{n}",
                            "policy_version": 1,
                            "rule_id": "all-breaches",
                            "trigger": "stopped_breached",
                            "level": 0,
                            "channel": "desk",
                            "recipients": [],
                            "slo_id": None,
                            "ticket_id": None,
                            "facts": {"n": n},
                            "event_at": now,
                            "due_at": now,
                            "next_attempt_at": now,
                            "status": "pending",
                            "attempts": 0,
                            "created_at": now,
                        }
                        for n in range(COUNT)
                    ],
                )
            await eventually(lambda: len(receivers.at("/hook")) >= COUNT // 8, "delivery got going")
            service.kill()
            at_kill = len(receivers.at("/hook"))
            service.start()
            await eventually(
                lambda: len({r.body["data"]["notification_id"] for r in receivers.at("/hook")}) >= COUNT,
                "every notification delivered after the restart",
            )
        finally:
            service.stop()
    async with sessions() as session:
        statuses = (
            await session.execute(
                sa.select(tables.notifications.c.status, sa.func.count())
                .where(tables.notifications.c.tenant_id == tenant)
                .group_by(tables.notifications.c.status)
            )
        ).all()
    await engine.dispose()
    ids = Counter(r.body["data"]["notification_id"] for r in receivers.at("/hook"))
    assert dict(statuses) == {"sent": COUNT}
    assert set(ids) == {f"ntf_{tenant}_{n:04d}" for n in range(COUNT)}
    assert all(r.headers.get("webhook-id") is None or r.headers["webhook-id"] in ids for r in receivers.at("/hook"))
    repeats = sum(count - 1 for count in ids.values())
    log.warning("killed after %d of %d deliveries; %d repeated to the receiver (same id)", at_kill, COUNT, repeats)
    # At most the batches the killed process held: 2 in flight of notification_batch (20) each.
    assert repeats <= 2 * 20, f"{repeats} repeats"
