"""Durable timers on the real stack: breaches fire at the computed instant with no further event, survive a
restart between scheduling and firing, and fire once with two engine instances sharing the work."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from scripts.processes import ServiceProcess
from slm_shared import topics
from tests.e2e.conftest import TenantClient
from tests.support.events import BATCH_HEADERS, batch_body, ticket_event
from tests.support.kafka import collect

pytestmark = pytest.mark.e2e


def short_target_bundle(seconds: int) -> str:
    return f"""
policies:
  - id: fast
    name: Fast resolution
    agreement: SLA
    match: {{kind: incident}}
    metrics:
      - metric: resolution
        calendar: 24x7
        targets: {{P1: {seconds}s}}
        warn_at: [50]
        stop: {{statuses: [resolved, closed]}}
"""


def apply(tenant: TenantClient, bundle: str) -> None:
    with tenant.client(tenant.platform.sla_engine) as engine:
        answer = engine.post("/v1/config:apply", content=bundle, headers={"Content-Type": "application/yaml"})
        assert answer.status_code == 200, answer.text


def transitions(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["data"]["transition"] == name]


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_a_breach_is_published_at_its_instant_with_no_further_event(tenant: TenantClient) -> None:
    apply(tenant, short_target_bundle(6))
    created = datetime.now(UTC).replace(microsecond=0)
    with tenant.client(tenant.platform.intake) as intake:
        intake.post("/v1/events", json=ticket_event(tenant.tenant, "INC-T1", created, priority="P1"))

    events = await collect(
        tenant.platform.stack.kafka_bootstrap,
        topics.CLOCKS,
        lambda got: bool(transitions(got, "breached")),
        tenant=tenant.tenant,
        within=60,
    )
    breached = transitions(events, "breached")
    warning = transitions(events, "warning")
    assert len(breached) == 1
    assert at(breached[0]["time"]) == created + timedelta(seconds=6)
    assert breached[0]["data"]["state"] == "running"
    assert breached[0]["data"]["breached"] is True
    assert [(at(w["time"]), w["data"]["threshold"]) for w in warning] == [(created + timedelta(seconds=3), 50)]


async def test_a_timer_scheduled_before_a_restart_fires_once_after_it(tenant: TenantClient) -> None:
    platform = tenant.platform
    apply(tenant, short_target_bundle(8))
    created = datetime.now(UTC).replace(microsecond=0)
    with tenant.client(platform.intake) as intake:
        intake.post("/v1/events", json=ticket_event(tenant.tenant, "INC-T2", created, priority="P1"))
    await collect(
        platform.stack.kafka_bootstrap,
        topics.CLOCKS,
        lambda got: bool(transitions(got, "started")),
        tenant=tenant.tenant,
        within=60,
    )
    assert platform.sla_engine.stop_gracefully()
    await asyncio.sleep(max(0.0, (created + timedelta(seconds=10) - datetime.now(UTC)).total_seconds()))
    platform.sla_engine.start()

    events = await collect(
        platform.stack.kafka_bootstrap,
        topics.CLOCKS,
        lambda got: bool(transitions(got, "breached")),
        tenant=tenant.tenant,
        within=60,
    )
    await asyncio.sleep(2)  # a second firing, if any, would be published by now
    events = await collect(
        platform.stack.kafka_bootstrap,
        topics.CLOCKS,
        lambda got: len(got) >= len(events),
        tenant=tenant.tenant,
        within=30,
    )
    breached = transitions(events, "breached")
    assert len(breached) == 1
    assert at(breached[0]["time"]) == created + timedelta(seconds=8)


async def test_two_engine_instances_fire_each_breach_once_across_a_rebalance(tenant: TenantClient) -> None:
    platform = tenant.platform
    apply(tenant, short_target_bundle(12))
    second = ServiceProcess("sla-engine", platform.stack, name="sla-engine-2").start()
    created = datetime.now(UTC).replace(microsecond=0)
    tickets = [f"INC-R{n}" for n in range(60)]
    async with httpx.AsyncClient(base_url=platform.intake.url, headers=tenant.headers, timeout=30) as intake:
        body = batch_body([ticket_event(tenant.tenant, t, created, priority="P1") for t in tickets])
        assert (await intake.post("/v1/events", content=body, headers=BATCH_HEADERS)).json()["accepted"] == 60
    await asyncio.sleep(4)
    assert second.stop_gracefully()  # the group rebalances while every timer is pending

    events = await collect(
        platform.stack.kafka_bootstrap,
        topics.CLOCKS,
        lambda got: len(transitions(got, "breached")) >= len(tickets),
        tenant=tenant.tenant,
        within=90,
    )
    await asyncio.sleep(2)
    events = await collect(
        platform.stack.kafka_bootstrap,
        topics.CLOCKS,
        lambda got: len(got) >= len(events),
        tenant=tenant.tenant,
        within=30,
    )
    per_ticket = Counter(e["data"]["ticket_id"] for e in transitions(events, "breached"))
    assert per_ticket == Counter(dict.fromkeys(tickets, 1))
    started = Counter(e["data"]["ticket_id"] for e in transitions(events, "started"))
    assert started == Counter(dict.fromkeys(tickets, 1))
