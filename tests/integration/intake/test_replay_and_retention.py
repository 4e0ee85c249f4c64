"""Replay of a tenant's archive (HTTP and CLI) and the retention purge."""

from __future__ import annotations

import asyncio
import os
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.app import webhook_cipher
from intake.handlers.purge import Purger
from intake.unit_of_work import IntakeUnitOfWork
from scripts.localstack import REPO, Stack
from slm_shared import topics
from slm_shared.db import session_factory
from tests.integration.intake.support import Keys, RunningIntake, TopicReader, drained
from tests.support.events import BATCH_HEADERS, batch_body, ticket_event

pytestmark = pytest.mark.integration

BASE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def test_a_replay_republishes_the_archived_events_of_the_range_with_their_ids(
    intake: RunningIntake, keys: Keys, stack: Stack, engine: AsyncEngine
) -> None:
    tenant = await keys.tenant()
    events = [ticket_event(tenant.id, f"INC-{n}", BASE + timedelta(hours=n)) for n in range(10)]
    await intake.client.post("/v1/events", content=batch_body(events), headers={**tenant.headers, **BATCH_HEADERS})
    await drained(engine, tenant.id)
    reader = await TopicReader(stack.kafka_bootstrap, topics.TICKETS).start()
    answer = await intake.client.post(
        "/v1/replay",
        headers=tenant.headers,
        json={"from": (BASE + timedelta(hours=2)).isoformat(), "to": (BASE + timedelta(hours=7)).isoformat()},
    )
    assert answer.status_code == 202
    summary = answer.json()
    assert summary["events"] == 5
    await reader.read_until(lambda _: len(reader.events(tenant.id)) >= 5)
    await drained(engine, tenant.id)
    await reader.read_to_end()
    await reader.stop()
    replayed = [r for r in reader.records if dict(r.headers).get("slm-replay") == summary["replay_id"].encode()]
    # Different tickets land on different partitions: compare as sets of keys and ids.
    assert sorted(r.key for r in replayed) == sorted(f"{tenant.id}/INC-{n}".encode() for n in range(2, 7))
    assert sorted(e["id"] for e in reader.events(tenant.id)) == sorted(e["id"] for e in events[2:7])


async def test_a_replay_only_sees_the_callers_tenant(intake: RunningIntake, keys: Keys, engine: AsyncEngine) -> None:
    tenant, other = await keys.tenant(), await keys.tenant()
    await intake.client.post("/v1/events", json=ticket_event(tenant.id, "INC-1", BASE), headers=tenant.headers)
    answer = await intake.client.post(
        "/v1/replay",
        headers=other.headers,
        json={"from": (BASE - timedelta(days=1)).isoformat(), "to": (BASE + timedelta(days=1)).isoformat()},
    )
    assert answer.json()["events"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"from": "2026-03-02T10:00:00Z", "to": "2026-03-02T09:00:00Z"},
        {"from": "2026-03-02T10:00:00", "to": "x"},
        {"to": "2026-03-02T10:00:00Z"},
    ],
)
async def test_a_replay_with_a_bad_range_is_refused(intake: RunningIntake, keys: Keys, body: dict[str, str]) -> None:
    tenant = await keys.tenant()
    assert (await intake.client.post("/v1/replay", headers=tenant.headers, json=body)).status_code == 422


async def test_the_replay_command_shows_progress_and_republishes_the_range(
    intake: RunningIntake, keys: Keys, stack: Stack, engine: AsyncEngine
) -> None:
    tenant = await keys.tenant()
    events = [ticket_event(tenant.id, f"INC-{n}", BASE + timedelta(minutes=n)) for n in range(30)]
    await intake.client.post("/v1/events", content=batch_body(events), headers={**tenant.headers, **BATCH_HEADERS})
    await drained(engine, tenant.id)
    reader = await TopicReader(stack.kafka_bootstrap, topics.TICKETS).start()
    completed = await asyncio.to_thread(
        subprocess.run,
        [
            str(REPO / ".venv" / "bin" / "slm-intake"),
            "replay",
            "--tenant",
            tenant.id,
            "--from",
            BASE.isoformat(),
            "--to",
            (BASE + timedelta(hours=1)).isoformat(),
        ],
        env={**os.environ, **stack.service_env("intake")},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "30 events re-published" in completed.stdout
    assert "30/30" in completed.stderr  # the progress bar's last state
    await reader.read_until(lambda _: len(reader.events(tenant.id)) >= 30)
    await reader.stop()
    assert sorted(e["id"] for e in reader.events(tenant.id)) == sorted(e["id"] for e in events)


async def test_retention_clears_the_archive_and_later_forgets_the_dedup_key(
    intake: RunningIntake, keys: Keys, engine: AsyncEngine
) -> None:
    tenant = await keys.tenant()
    sent = ticket_event(tenant.id, "INC-1", BASE)
    await intake.client.post("/v1/events", json=sent, headers=tenant.headers)
    sessions = session_factory(engine)
    purger = Purger(lambda: IntakeUnitOfWork(sessions, webhook_cipher(intake.settings)), intake.settings)
    now = datetime.now(UTC)
    settings = intake.settings
    archive_only = now + timedelta(days=settings.archive_retention_days + 1)
    assert (await purger.purge(tenant.id, at=archive_only))["archive_cleared"] == 1
    replay = await intake.client.post(
        "/v1/replay",
        headers=tenant.headers,
        json={"from": (BASE - timedelta(days=1)).isoformat(), "to": (BASE + timedelta(days=1)).isoformat()},
    )
    assert replay.json()["events"] == 0
    again = await intake.client.post("/v1/events", json=sent, headers=tenant.headers)
    assert again.json()["results"][0]["result"] == "duplicate"
    assert (await purger.purge(tenant.id, at=now + timedelta(days=settings.dedup_retention_days + 1))) == {
        "archive_cleared": 0,
        "dedup_forgotten": 1,
        "rejections_dropped": 0,
    }
    after = await intake.client.post("/v1/events", json=sent, headers=tenant.headers)
    assert after.json()["results"][0]["result"] == "accepted"
