"""Signed webhooks per tenant and system, scoped keys and the failed-authentication throttle, on the real
stack (an in-process intake against the real PostgreSQL and Kafka).

Signatures are computed here with the standard library's `hmac`, never with intake's own code; the vendor
vectors of each scheme are pinned in tests/unit/intake/test_webhook_signatures.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from intake.tables import api_keys, received_events, webhook_secrets
from scripts.localstack import REPO, Stack
from tests.integration.intake.support import Keys, RunningIntake, Tenant, intake_settings, running_intake

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "webhooks"
JIRA_BODY = (FIXTURES / "jira" / "issue_created.json").read_bytes()
ZENDESK_BODY = (FIXTURES / "zendesk" / "ticket_created.json").read_bytes()
SERVICENOW_BODY = (FIXTURES / "servicenow" / "incident_inserted.json").read_bytes()
JSON = {"Content-Type": "application/json"}


def jira_headers(secret: str, body: bytes) -> dict[str, str]:
    return {**JSON, "X-Hub-Signature": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def timestamped(secret: str, body: bytes, timestamp: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()).decode()


def zendesk_headers(secret: str, body: bytes, at: datetime | None = None) -> dict[str, str]:
    timestamp = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        **JSON,
        "X-Zendesk-Webhook-Signature": timestamped(secret, body, timestamp),
        "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
    }


async def issue(intake: RunningIntake, admin: Tenant, system: str, **body: object) -> dict[str, str]:
    answer = await intake.client.post(f"/v1/webhook-secrets/{system}", json=body or None, headers=admin.headers)
    assert answer.status_code == 201, answer.text
    issued: dict[str, str] = answer.json()
    return issued


async def archived(engine: AsyncEngine, tenant: str) -> int:
    async with engine.connect() as connection:
        return int(
            (
                await connection.execute(
                    sa.select(sa.func.count()).select_from(received_events).where(received_events.c.tenant_id == tenant)
                )
            ).scalar_one()
        )


async def test_a_jira_webhook_signed_with_the_tenants_secret_is_taken_without_an_api_key(
    intake: RunningIntake, keys: Keys, engine: AsyncEngine
) -> None:
    admin = await keys.tenant("hook", ("admin",))
    issued = await issue(intake, admin, "jira")
    assert issued["url_path"] == f"/v1/webhooks/jira/{admin.id}"
    answer = await intake.client.post(
        issued["url_path"], content=JIRA_BODY, headers=jira_headers(issued["secret"], JIRA_BODY)
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["results"][0]["result"] == "accepted"
    assert await archived(engine, admin.id) == 1


async def test_a_forged_signature_is_refused_and_nothing_is_taken(
    intake: RunningIntake, keys: Keys, engine: AsyncEngine
) -> None:
    admin = await keys.tenant("hook", ("admin",))
    issued = await issue(intake, admin, "jira")
    forged = await intake.client.post(
        issued["url_path"], content=JIRA_BODY, headers=jira_headers("a secret the attacker guessed", JIRA_BODY)
    )
    unsigned = await intake.client.post(issued["url_path"], content=JIRA_BODY, headers=JSON)
    tampered = await intake.client.post(
        issued["url_path"],
        content=JIRA_BODY.replace(b"Mailbox", b"Mallbox"),
        headers=jira_headers(issued["secret"], JIRA_BODY),
    )
    bearer_only = await intake.client.post(issued["url_path"], content=JIRA_BODY, headers={**JSON, **admin.headers})
    assert [r.status_code for r in (forged, unsigned, tampered, bearer_only)] == [401, 401, 401, 401]
    assert "does not verify" in forged.json()["detail"]
    assert "missing" in unsigned.json()["detail"]
    assert await archived(engine, admin.id) == 0


async def test_an_unknown_tenant_looks_like_a_bad_signature(intake: RunningIntake, keys: Keys) -> None:
    admin = await keys.tenant("hook", ("admin",))
    issued = await issue(intake, admin, "jira")
    elsewhere = await intake.client.post(
        f"/v1/webhooks/jira/{admin.id}-nobody", content=JIRA_BODY, headers=jira_headers(issued["secret"], JIRA_BODY)
    )
    forged = await intake.client.post(issued["url_path"], content=JIRA_BODY, headers=jira_headers("x" * 20, JIRA_BODY))
    assert (elsewhere.status_code, elsewhere.json()) == (forged.status_code, forged.json())


async def test_a_stale_zendesk_timestamp_is_refused_even_with_a_good_signature(
    intake: RunningIntake, keys: Keys, engine: AsyncEngine
) -> None:
    admin = await keys.tenant("hook", ("admin",))
    secret = "zendesk-generated-signing-secret-0123456789"
    issued = await issue(intake, admin, "zendesk", secret=secret)
    assert issued["secret"] == secret
    stale = datetime.now(UTC) - timedelta(seconds=intake.settings.webhook_replay_window_seconds + 60)
    answer = await intake.client.post(
        issued["url_path"], content=ZENDESK_BODY, headers=zendesk_headers(secret, ZENDESK_BODY, stale)
    )
    assert answer.status_code == 401
    assert "replay window" in answer.json()["detail"]
    fresh = await intake.client.post(
        issued["url_path"], content=ZENDESK_BODY, headers=zendesk_headers(secret, ZENDESK_BODY)
    )
    assert fresh.status_code == 202, fresh.text
    assert await archived(engine, admin.id) == 1


async def test_a_replayed_delivery_is_refused_while_a_new_delivery_of_the_same_payload_is_a_duplicate(
    intake: RunningIntake, keys: Keys, engine: AsyncEngine
) -> None:
    admin = await keys.tenant("hook", ("admin",))
    secret = "zendesk-generated-signing-secret-abcdefghij"
    issued = await issue(intake, admin, "zendesk", secret=secret)
    headers = zendesk_headers(secret, ZENDESK_BODY, datetime.now(UTC) - timedelta(seconds=5))
    first = await intake.client.post(issued["url_path"], content=ZENDESK_BODY, headers=headers)
    replayed = await intake.client.post(issued["url_path"], content=ZENDESK_BODY, headers=headers)
    resent = await intake.client.post(
        issued["url_path"], content=ZENDESK_BODY, headers=zendesk_headers(secret, ZENDESK_BODY)
    )
    assert first.status_code == 202, first.text
    assert replayed.status_code == 409
    assert "replay" in replayed.json()["detail"]
    assert resent.status_code == 202
    assert resent.json()["results"][0]["result"] == "duplicate"
    assert await archived(engine, admin.id) == 1


async def test_a_replayed_jira_delivery_is_refused(intake: RunningIntake, keys: Keys) -> None:
    admin = await keys.tenant("hook", ("admin",))
    issued = await issue(intake, admin, "jira")
    headers = jira_headers(issued["secret"], JIRA_BODY)
    first = await intake.client.post(issued["url_path"], content=JIRA_BODY, headers=headers)
    again = await intake.client.post(issued["url_path"], content=JIRA_BODY, headers=headers)
    assert (first.status_code, again.status_code) == (202, 409)


async def test_servicenow_deliveries_carry_our_shared_secret_hmac_header(intake: RunningIntake, keys: Keys) -> None:
    admin = await keys.tenant("hook", ("admin",))
    issued = await issue(intake, admin, "servicenow")
    timestamp = str(int(datetime.now(UTC).timestamp()))
    good = {
        **JSON,
        "X-SLM-Webhook-Timestamp": timestamp,
        "X-SLM-Webhook-Signature": timestamped(issued["secret"], SERVICENOW_BODY, timestamp),
    }
    forged = {**good, "X-SLM-Webhook-Signature": timestamped("not-the-secret-at-all", SERVICENOW_BODY, timestamp)}
    assert (await intake.client.post(issued["url_path"], content=SERVICENOW_BODY, headers=forged)).status_code == 401
    answer = await intake.client.post(issued["url_path"], content=SERVICENOW_BODY, headers=good)
    assert answer.status_code == 202, answer.text


async def test_a_rotated_secret_stays_valid_for_its_grace_and_a_revoked_one_at_once_not(
    intake: RunningIntake, keys: Keys
) -> None:
    admin = await keys.tenant("hook", ("admin",))
    old = await issue(intake, admin, "jira")
    new = await issue(intake, admin, "jira", grace_seconds=3600)
    assert new["previous_valid_until"] is not None
    bodies = [JIRA_BODY.replace(b"INC-", f"INC-{n}".encode()) for n in range(4)]
    with_old = await intake.client.post(
        old["url_path"], content=bodies[0], headers=jira_headers(old["secret"], bodies[0])
    )
    with_new = await intake.client.post(
        new["url_path"], content=bodies[1], headers=jira_headers(new["secret"], bodies[1])
    )
    assert (with_old.status_code, with_new.status_code) == (202, 202)
    listing = (await intake.client.get("/v1/webhook-secrets", headers=admin.headers)).json()
    assert sorted(item["valid_until"] is None for item in listing) == [False, True]
    assert all("secret" not in item for item in listing)
    revoked = await intake.client.delete("/v1/webhook-secrets/jira", headers=admin.headers)
    assert revoked.json() == {"revoked": 2}
    after = [
        await intake.client.post(new["url_path"], content=bodies[n], headers=jira_headers(s, bodies[n]))
        for n, s in ((2, new["secret"]), (3, old["secret"]))
    ]
    assert [a.status_code for a in after] == [401, 401]


async def test_a_rotation_without_grace_retires_the_old_secret_at_once(intake: RunningIntake, keys: Keys) -> None:
    admin = await keys.tenant("hook", ("admin",))
    old = await issue(intake, admin, "jira")
    await issue(intake, admin, "jira", grace_seconds=0)
    answer = await intake.client.post(
        old["url_path"], content=JIRA_BODY, headers=jira_headers(old["secret"], JIRA_BODY)
    )
    assert answer.status_code == 401


async def test_secrets_are_stored_encrypted(intake: RunningIntake, keys: Keys, engine: AsyncEngine) -> None:
    admin = await keys.tenant("hook", ("admin",))
    issued = await issue(intake, admin, "jira")
    async with engine.connect() as connection:
        stored = (
            await connection.execute(
                sa.select(webhook_secrets.c.ciphertext).where(webhook_secrets.c.secret_id == issued["secret_id"])
            )
        ).scalar_one()
    assert issued["secret"].encode() not in stored
    assert base64.urlsafe_b64decode(stored)[:1] == b"\x80"  # a Fernet token (version byte 0x80)


async def test_a_revocation_is_final_and_revoking_again_keeps_its_time(
    intake: RunningIntake, keys: Keys, engine: AsyncEngine
) -> None:
    """Intake keeps its keys with the upsert every service keeps its copy with (`slm_shared.auth.store_key`)."""
    tenant = await keys.tenant("revoke")

    async def stored() -> tuple[str, datetime]:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    sa.select(api_keys.c.status, api_keys.c.updated_at).where(api_keys.c.key_id == tenant.key_id)
                )
            ).one()
        return row.status, row.updated_at

    await keys.admin.revoke(tenant.key_id)
    first = await stored()
    await keys.admin.revoke(tenant.key_id)
    assert first[0] == "revoked"
    assert await stored() == first
    assert (await intake.client.get("/v1/rejections", headers=tenant.headers)).status_code == 401


async def test_each_key_reaches_only_the_routes_of_its_scopes(intake: RunningIntake, keys: Keys) -> None:
    reader = await keys.tenant("scoped", ("read",))
    ingest = await keys.another_key(reader, ("ingest",))
    event = {
        "specversion": "1.0",
        "id": "evt-scope-1",
        "source": "jira://acme",
        "type": "itsm.ticket.v1",
        "time": "2026-05-04T09:30:00+08:00",
        "data": {
            "ticket_id": "INC-1",
            "action": "created",
            "kind": "incident",
            "service": "email",
            "customer": "acme",
            "priority": "P2",
            "status": "new",
        },
    }
    posted_by_reader = await intake.client.post(
        "/v1/events", content=json.dumps(event), headers={**reader.headers, **JSON}
    )
    assert posted_by_reader.status_code == 403
    assert "`ingest` scope" in posted_by_reader.json()["detail"]
    webhook_by_reader = await intake.client.post(
        "/v1/webhooks/jira", content=JIRA_BODY, headers={**reader.headers, **JSON}
    )
    assert webhook_by_reader.status_code == 403
    posted_by_ingest = await intake.client.post(
        "/v1/events", content=json.dumps(event), headers={**ingest.headers, **JSON}
    )
    assert posted_by_ingest.status_code == 202, posted_by_ingest.text
    assert (await intake.client.get("/v1/rejections", headers=reader.headers)).status_code == 200
    read_by_ingest = await intake.client.get("/v1/rejections", headers=ingest.headers)
    assert read_by_ingest.status_code == 403
    assert "`read` scope" in read_by_ingest.json()["detail"]
    secrets_by_ingest = await intake.client.post("/v1/webhook-secrets/jira", headers=ingest.headers)
    assert secrets_by_ingest.status_code == 403
    assert "`admin` scope" in secrets_by_ingest.json()["detail"]
    mapping_by_reader = await intake.client.put("/v1/mappings/jira", json={}, headers=reader.headers)
    assert mapping_by_reader.status_code == 403
    assert "`config` scope" in mapping_by_reader.json()["detail"]


async def test_a_client_that_fails_authentication_too_often_is_throttled(stack: Stack, keys: Keys) -> None:
    tenant = await keys.tenant("throttle")
    settings = intake_settings(stack, auth_failure_burst=3, auth_failure_per_minute=1)
    async with running_intake(settings) as running:

        def client(address: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(
                app=running.client._transport.app,  # type: ignore[attr-defined]
                client=(address, 40000),
            )
            return httpx.AsyncClient(transport=transport, base_url="http://intake")

        async with client("203.0.113.7") as guesser, client("198.51.100.2") as bystander:
            wrong = {"Authorization": f"Bearer slm_{tenant.key_id}_not-the-secret"}
            answers = [(await guesser.get("/v1/rejections", headers=wrong)).status_code for _ in range(4)]
            assert answers == [401, 401, 401, 429]
            throttled = await guesser.get("/v1/rejections", headers=tenant.headers)
            assert throttled.status_code == 429
            assert int(throttled.headers["Retry-After"]) >= 1
            posted = await guesser.post("/v1/events", content=b"{}", headers={**wrong, **JSON})
            assert posted.status_code == 429
            forged_hooks = await guesser.post(
                f"/v1/webhooks/jira/{tenant.id}",
                content=JIRA_BODY,
                headers=jira_headers("guess-guess-guess", JIRA_BODY),
            )
            assert forged_hooks.status_code == 429
            assert (await bystander.get("/v1/rejections", headers=tenant.headers)).status_code == 200


def slm_intake(stack: Stack, *args: str, stdin: str | None = None) -> list[str]:
    completed = subprocess.run(
        [str(REPO / ".venv" / "bin" / "slm-intake"), *args],
        input=stdin,
        text=True,
        env={**os.environ, **stack.service_env("intake")},
        capture_output=True,
        check=True,
        timeout=120,
    )
    return completed.stdout.strip().splitlines()


async def test_the_cli_issues_scoped_keys_and_webhook_secrets_the_service_accepts(
    intake: RunningIntake, stack: Stack
) -> None:
    if stack.secret("intake", "webhook_secret_keys") is None:
        pytest.skip("the stack has no webhook encryption key (`make up` writes one)")
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    [key] = slm_intake(stack, "keys", "create", "--tenant", tenant, "--scopes", "ingest")
    listed = [line.split("\t") for line in slm_intake(stack, "keys", "list", "--tenant", tenant)]
    assert [row[1:] for row in listed] == [[tenant, "active", "ingest"]]
    refused = await intake.client.get("/v1/rejections", headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 403

    secret = "imported-zendesk-signing-secret-000111"
    [line] = slm_intake(
        stack, "webhooks", "create", "--tenant", tenant, "--system", "zendesk", "--secret-stdin", stdin=secret + "\n"
    )
    assert line.endswith(f"/v1/webhooks/zendesk/{tenant}")
    answer = await intake.client.post(
        f"/v1/webhooks/zendesk/{tenant}", content=ZENDESK_BODY, headers=zendesk_headers(secret, ZENDESK_BODY)
    )
    assert answer.status_code == 202, answer.text
    _, rotated = slm_intake(
        stack, "webhooks", "rotate", "--tenant", tenant, "--system", "zendesk", "--grace-hours", "0"
    )
    old = await intake.client.post(
        f"/v1/webhooks/zendesk/{tenant}", content=ZENDESK_BODY, headers=zendesk_headers(secret, ZENDESK_BODY)
    )
    new = await intake.client.post(
        f"/v1/webhooks/zendesk/{tenant}", content=ZENDESK_BODY, headers=zendesk_headers(rotated, ZENDESK_BODY)
    )
    assert (old.status_code, new.status_code) == (401, 202)
