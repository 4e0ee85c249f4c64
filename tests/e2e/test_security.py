"""Least privilege on the running services: scoped keys on the sla-engine and reporting, and key
announcements that count only when intake signed them (a forged one on Kafka is ignored and counted).

The forged records are written straight to `itsm.tenants.v1`, as anyone with write access to the topic could.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from scripts.localstack import REPO
from scripts.processes import LocalPlatform, ServiceProcess
from slm_shared import topics
from slm_shared.auth import issue_key
from slm_shared.events import API_KEY_EVENT, ApiKeyData, make_event
from slm_shared.signing import AnnouncementSigner, generate_signing_key

pytestmark = pytest.mark.e2e
YAML = {"Content-Type": "application/yaml"}
BUNDLE = "policies: []\n"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def rejected_announcements(service: ServiceProcess) -> float:
    text = httpx.get(f"{service.url}/metrics", timeout=10).text
    found = re.search(r'^slm_key_announcements_total\{outcome="rejected"\} ([0-9.e+]+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.2)


def publish(bootstrap: str, *announcements: tuple[str, ApiKeyData]) -> None:
    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for event_id, key in announcements:
                event = make_event(
                    event_id=event_id,
                    source="slm://intake/keys",
                    event_type=API_KEY_EVENT,
                    time=datetime.now(UTC),
                    tenant_id=key.tenant_id,
                    subject=key.key_id,
                    data=key,
                )
                await producer.send_and_wait(
                    topics.TENANTS, event.to_json_bytes(), key=f"{key.tenant_id}/{key.key_id}".encode()
                )
        finally:
            await producer.stop()

    asyncio.run(send())


def test_an_ingest_key_cannot_apply_configuration_and_a_read_key_cannot_post_events(platform: LocalPlatform) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    ingest = platform.new_tenant(tenant, scopes="ingest")
    read = platform.new_tenant(tenant, scopes="read")
    config = platform.new_tenant(tenant, scopes="config")

    applied_by_ingest = httpx.post(
        f"{platform.sla_engine.url}/v1/config:apply", content=BUNDLE, headers={**bearer(ingest), **YAML}, timeout=30
    )
    assert applied_by_ingest.status_code == 403
    assert "`config` scope" in applied_by_ingest.json()["detail"]
    applied_by_config = httpx.post(
        f"{platform.sla_engine.url}/v1/config:apply", content=BUNDLE, headers={**bearer(config), **YAML}, timeout=30
    )
    assert applied_by_config.status_code == 200, applied_by_config.text
    assert httpx.get(f"{platform.sla_engine.url}/v1/config", headers=bearer(read), timeout=30).status_code == 200

    posted_by_read = httpx.post(
        f"{platform.intake.url}/v1/events",
        content=b"{}",
        timeout=30,
        headers={**bearer(read), "Content-Type": "application/cloudevents+json"},
    )
    assert posted_by_read.status_code == 403
    assert "`ingest` scope" in posted_by_read.json()["detail"]

    report_by_ingest = httpx.get(f"{platform.reporting.url}/v1/reports/slr", headers=bearer(ingest), timeout=30)
    assert report_by_ingest.status_code == 403
    assert "`read` scope" in report_by_ingest.json()["detail"]
    assert httpx.get(f"{platform.reporting.url}/v1/reports/slr", headers=bearer(read), timeout=60).status_code == 200
    close_by_read = httpx.post(f"{platform.reporting.url}/v1/periods:close", headers=bearer(read), timeout=30)
    assert close_by_read.status_code == 403
    assert "`admin` scope" in close_by_read.json()["detail"]


def test_a_forged_key_announcement_on_kafka_is_ignored_and_counted(platform: LocalPlatform) -> None:
    tenant = f"victim-{uuid.uuid4().hex[:8]}"
    genuine = platform.new_tenant(tenant)  # the tenant exists; the attacker wants a key of their own for it
    forged_key = issue_key(tenant)
    announced = ApiKeyData(key_id=forged_key.key_id, tenant_id=tenant, key_hash=forged_key.key_hash, status="active")
    attacker_private, _ = generate_signing_key()
    before = {service.name: rejected_announcements(service) for service in (platform.sla_engine, platform.reporting)}

    publish(
        platform.stack.kafka_bootstrap,
        (f"{forged_key.key_id}-active", announced),  # unsigned
        (f"{forged_key.key_id}-active-2", AnnouncementSigner(attacker_private).sign(announced)),  # wrong key
        (f"{forged_key.key_id}-active-3", announced.model_copy(update={"signature": "AAAA"})),
    )  # garbage

    for service in (platform.sla_engine, platform.reporting):

        def counted(service: ServiceProcess = service) -> bool:
            return rejected_announcements(service) >= before[service.name] + 3

        eventually(counted, f"{service.name} counted the three forged announcements")
    for url, path in ((platform.sla_engine.url, "/v1/config"), (platform.reporting.url, "/v1/reports/slr")):
        answer = httpx.get(f"{url}{path}", headers=bearer(forged_key.plaintext), timeout=30)
        assert answer.status_code == 401, (url, answer.text)
        assert httpx.get(f"{url}{path}", headers=bearer(genuine), timeout=60).status_code in (200, 404)


def test_a_forged_revocation_cannot_swallow_the_genuine_one(platform: LocalPlatform) -> None:
    """The forged record takes the id intake will give the real revocation (`<key_id>-revoked`): verified
    before the inbox, it must not make the genuine revocation look like a duplicate."""
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    key = platform.new_tenant(tenant)
    key_id = key.split("_")[1]
    before = rejected_announcements(platform.sla_engine)
    publish(
        platform.stack.kafka_bootstrap,
        (f"{key_id}-revoked", ApiKeyData(key_id=key_id, tenant_id=tenant, key_hash="0" * 64, status="revoked")),
    )
    eventually(lambda: rejected_announcements(platform.sla_engine) >= before + 1, "the forged revocation counted")
    assert httpx.get(f"{platform.sla_engine.url}/v1/config", headers=bearer(key), timeout=30).status_code != 401

    subprocess.run(
        [str(REPO / ".venv" / "bin" / "slm-intake"), "keys", "revoke", key_id],
        check=True,
        timeout=60,
        env={**os.environ, **platform.stack.service_env("intake")},
        capture_output=True,
    )
    eventually(
        lambda: httpx.get(f"{platform.sla_engine.url}/v1/config", headers=bearer(key), timeout=30).status_code == 401,
        "the genuine revocation reached the sla-engine",
    )
