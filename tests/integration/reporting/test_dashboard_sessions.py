"""Dashboard sign-in against reporting on the real PostgreSQL: server-side sessions, their end, the Origin check
and the security headers. The app's clock is pinned to move past a session's lifetime or idle time.
(The same flows in a real browser: test_dashboard_in_a_browser.py.)"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from reporting import tables
from reporting.api import DASHBOARD_COOKIE
from reporting.sessions import SessionPolicy
from reporting.settings import ReportingSettings
from reporting.unit_of_work import ReportingUnitOfWork
from slm_shared.auth import key_id_of, store_key
from slm_shared.events import ApiKeyData
from tests.integration.reporting.conftest import Reporting, Tenant

pytestmark = pytest.mark.integration

FORM = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://reporting.test"}
DEFAULTS = ReportingSettings(database_url="postgresql+asyncpg://unused/none")


async def sign_in(reporting: Reporting, tenant: Tenant, **headers: str) -> httpx.Response:
    reporting.client.cookies.clear()  # the session-wide client must not carry a cookie from test to test
    answer = await reporting.client.post(
        "/v1/dashboard/login", content=f"key={tenant.key}", headers={**FORM, **headers}
    )
    reporting.client.cookies.clear()
    return answer


async def dashboard(reporting: Reporting, session_id: str) -> httpx.Response:
    reporting.client.cookies.clear()
    return await reporting.client.get("/v1/dashboard", cookies={DASHBOARD_COOKIE: session_id})


async def stored_sessions(reporting: Reporting, tenant: Tenant) -> list[tuple[str, str]]:
    """(session hash, key id) of the tenant's stored sessions."""
    t = tables.dashboard_sessions
    async with reporting.sessions() as session:
        rows = (
            await session.execute(sa.select(t.c.session_hash, t.c.key_id).where(t.c.tenant_id == tenant.name))
        ).all()
    return [(str(row.session_hash), str(row.key_id)) for row in rows]


@pytest.fixture(autouse=True)
def real_time(reporting: Reporting) -> None:
    reporting.clock.pinned = None


async def test_a_sign_in_stores_only_the_hash_of_a_random_session_id_in_a_dashboard_only_cookie(
    reporting: Reporting,
) -> None:
    tenant = await reporting.tenant("session")
    answer = await sign_in(reporting, tenant)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/v1/dashboard"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "Path=/v1/dashboard" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain HTTP without a trusted proxy (the HTTPS case: the browser test)
    session_id = answer.cookies[DASHBOARD_COOKIE]
    assert tenant.key not in cookie
    assert len(session_id) >= 43  # 256 bits, base64url
    [(stored_hash, key_id)] = await stored_sessions(reporting, tenant)
    assert stored_hash == hashlib.sha256(session_id.encode()).hexdigest()
    assert key_id == key_id_of(tenant.key)

    page = await dashboard(reporting, session_id)
    assert page.status_code == 200
    assert tenant.name in page.text
    # The session opens the dashboard only: the report API still wants the bearer header.
    reporting.client.cookies.clear()
    assert (await reporting.client.get("/v1/reports/slr", cookies={DASHBOARD_COOKIE: session_id})).status_code == 401


async def test_a_stolen_session_cookie_is_dead_after_logout(reporting: Reporting) -> None:
    tenant = await reporting.tenant("logout")
    session_id = (await sign_in(reporting, tenant)).cookies[DASHBOARD_COOKIE]
    reporting.client.cookies.clear()
    answer = await reporting.client.post(
        "/v1/dashboard/logout", cookies={DASHBOARD_COOKIE: session_id}, headers={"Origin": "http://reporting.test"}
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/v1/dashboard/login"
    assert await stored_sessions(reporting, tenant) == []
    replayed = await dashboard(reporting, session_id)  # a copy of the cookie taken before the logout
    assert replayed.status_code == 303
    assert replayed.headers["location"] == "/v1/dashboard/login"
    reporting.client.cookies.clear()
    data = await reporting.client.get("/v1/dashboard/data", cookies={DASHBOARD_COOKIE: session_id})
    assert data.status_code == 401


async def test_revoking_the_key_ends_the_sessions_it_opened(reporting: Reporting) -> None:
    tenant = await reporting.tenant("revoke")
    first = (await sign_in(reporting, tenant)).cookies[DASHBOARD_COOKIE]
    second = (await sign_in(reporting, tenant)).cookies[DASHBOARD_COOKIE]
    assert (await dashboard(reporting, first)).status_code == 200
    key_id = key_id_of(tenant.key)
    assert key_id is not None
    async with reporting.sessions() as session, session.begin():  # what intake's revocation announcement does
        await store_key(
            session,
            tables.api_keys,
            ApiKeyData(
                key_id=key_id,
                tenant_id=tenant.name,
                key_hash=hashlib.sha256(tenant.key.encode()).hexdigest(),
                status="revoked",
            ),
            datetime.now(UTC),
        )
    for session_id in (first, second):
        answer = await dashboard(reporting, session_id)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/v1/dashboard/login"


async def test_a_session_ends_after_its_lifetime_and_after_idle_time(reporting: Reporting) -> None:
    tenant = await reporting.tenant("expiry")
    start = datetime.now(UTC)
    idle = timedelta(seconds=DEFAULTS.dashboard_session_idle_seconds)
    lifetime = timedelta(seconds=DEFAULTS.dashboard_session_seconds)

    reporting.clock.pinned = start
    idle_session = (await sign_in(reporting, tenant)).cookies[DASHBOARD_COOKIE]
    reporting.clock.pinned = start + idle - timedelta(seconds=1)
    assert (await dashboard(reporting, idle_session)).status_code == 200
    reporting.clock.pinned = start + idle - timedelta(seconds=1) + idle  # one idle span after the last request
    assert (await dashboard(reporting, idle_session)).status_code == 303

    reporting.clock.pinned = start
    busy_session = (await sign_in(reporting, tenant)).cookies[DASHBOARD_COOKIE]
    at = start
    while at + idle / 2 < start + lifetime:  # used all along: never idle, yet it ends with its lifetime
        at += idle / 2
        reporting.clock.pinned = at
        assert (await dashboard(reporting, busy_session)).status_code == 200
    reporting.clock.pinned = start + lifetime
    assert (await dashboard(reporting, busy_session)).status_code == 303
    assert await stored_sessions(reporting, tenant) == []  # both rows deleted when found dead


async def test_the_sign_in_and_sign_out_forms_refuse_other_origins(reporting: Reporting) -> None:
    tenant = await reporting.tenant("origin")
    for headers in (
        {"Origin": "https://attacker.example"},
        {"Origin": "null"},
        {"Origin": "", "Referer": "https://attacker.example/page"},
        {"Origin": "http://reporting.test.attacker.example"},
    ):
        answer = await sign_in(reporting, tenant, **headers)
        assert answer.status_code == 403, headers
        assert DASHBOARD_COOKIE not in answer.cookies
    without = await reporting.client.post(
        "/v1/dashboard/login",
        content=f"key={tenant.key}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert without.status_code == 403  # neither Origin nor Referer: no browser form sent it
    assert await stored_sessions(reporting, tenant) == []
    by_referer = await sign_in(reporting, tenant, Origin="", Referer="http://reporting.test/v1/dashboard/login")
    assert by_referer.status_code == 303

    session_id = by_referer.cookies[DASHBOARD_COOKIE]
    reporting.client.cookies.clear()
    forged = await reporting.client.post(
        "/v1/dashboard/logout", cookies={DASHBOARD_COOKIE: session_id}, headers={"Origin": "https://attacker.example"}
    )
    assert forged.status_code == 403
    assert (await dashboard(reporting, session_id)).status_code == 200


async def test_keys_in_the_dashboard_url_are_refused(reporting: Reporting) -> None:
    tenant = await reporting.tenant("url")
    reporting.client.cookies.clear()
    answer = await reporting.client.get("/v1/dashboard", params={"key": tenant.key})
    assert answer.status_code == 400
    assert DASHBOARD_COOKIE not in answer.cookies
    assert tenant.key not in answer.text


async def test_pages_and_api_answers_carry_the_security_headers(reporting: Reporting) -> None:
    tenant = await reporting.tenant("headers")
    reporting.client.cookies.clear()
    login_page = await reporting.client.get("/v1/dashboard/login")
    session_id = (await sign_in(reporting, tenant)).cookies[DASHBOARD_COOKIE]
    page = await dashboard(reporting, session_id)
    api = await tenant.get("/v1/reporting-config")
    unauthorized = await reporting.client.get("/v1/reports/slr")
    for answer in (login_page, page, api, unauthorized):
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "same-origin"
        assert "strict-transport-security" not in answer.headers  # plain HTTP
    for answer in (login_page, page):
        policy = answer.headers["content-security-policy"]
        [nonce] = [part.split("'nonce-")[1].rstrip("'") for part in policy.split(";") if "script-src" in part]
        assert f'<style nonce="{nonce}">' in answer.text
        assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
        assert answer.headers["cache-control"] == "no-store"
    assert '<script nonce="' in page.text
    assert login_page.headers["content-security-policy"] != page.headers["content-security-policy"]  # fresh nonces


async def test_the_purge_deletes_ended_sessions_only(reporting: Reporting) -> None:
    tenant = await reporting.tenant("purge")
    live = (await sign_in(reporting, tenant)).cookies[DASHBOARD_COOKIE]
    runtime = reporting.app.state.runtime  # type: ignore[attr-defined]
    assert "purging dashboard sessions" in [name for name, _ in runtime.background]
    now = datetime.now(UTC)
    async with reporting.sessions() as session, session.begin():
        await session.execute(
            sa.insert(tables.dashboard_sessions).values(
                session_hash="0" * 64,
                key_id=key_id_of(tenant.key),
                tenant_id=tenant.name,
                created_at=now - timedelta(days=2),
                last_seen_at=now - timedelta(days=2),
                expires_at=now - timedelta(days=1),
            )
        )
    assert len(await stored_sessions(reporting, tenant)) == 2
    policy = SessionPolicy(
        lifetime=timedelta(seconds=DEFAULTS.dashboard_session_seconds),
        idle=timedelta(seconds=DEFAULTS.dashboard_session_idle_seconds),
    )
    async with ReportingUnitOfWork(reporting.sessions) as uow:
        assert await uow.signins.purge(now, policy) >= 1
        await uow.commit()
    [(remaining, _)] = await stored_sessions(reporting, tenant)
    assert remaining == hashlib.sha256(live.encode()).hexdigest()
