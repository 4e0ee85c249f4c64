"""The live dashboard in headless Chromium, served by reporting as a real process: signing in through the form,
tables and charts with data under the page's Content-Security-Policy, signing out (a copied session cookie is
dead after it), a session outliving its lifetime, forged cross-site sign-in and sign-out forms, and the Secure
cookie behind a TLS-terminating proxy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from PIL import Image

from reporting import tables
from reporting.api import DASHBOARD_COOKIE
from scripts.localstack import Stack
from scripts.processes import ServiceProcess
from slm_shared.events import CloudEvent
from tests.integration.reporting.conftest import Reporting
from tests.integration.reporting.events import clock_event, slo_status_event
from tests.support.chromium import Browser, headless_chromium

pytestmark = pytest.mark.integration

GREEN, RED = (46, 125, 50), (198, 40, 40)
SESSION_LIFETIME_SECONDS = 20  # of the expiring server's sessions


@pytest.fixture(scope="module")
def dashboard_server(stack: Stack) -> Iterator[ServiceProcess]:
    # 127.0.0.1 is its trusted proxy: a request from it with X-Forwarded-Proto: https is an HTTPS request.
    process = ServiceProcess(
        "reporting",
        stack,
        name="reporting-dashboard",
        kafka__group_id=f"reporting-dash-{uuid.uuid4().hex[:8]}",
        consumer_offset_reset="latest",
        period_close_enabled="false",
        dashboard_refresh_seconds="2",
        forwarded_allow_ips="127.0.0.1",
    ).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def expiring_server(stack: Stack) -> Iterator[ServiceProcess]:
    process = ServiceProcess(
        "reporting",
        stack,
        name="reporting-dashboard-expiring",
        kafka__group_id=f"reporting-dash-{uuid.uuid4().hex[:8]}",
        consumer_offset_reset="latest",
        period_close_enabled="false",
        dashboard_session_seconds=str(SESSION_LIFETIME_SECONDS),
    ).start()
    yield process
    process.stop()


async def sign_in(browser: Browser, server: ServiceProcess, key: str) -> None:
    """As a person would: open the dashboard, land on the sign-in form, type the key, submit."""
    await browser.navigate(f"{server.url}/v1/dashboard")
    assert await browser.location() == f"{server.url}/v1/dashboard/login"
    await browser.submit(
        f"document.getElementById('key').value = {json.dumps(key)}; "
        "document.querySelector('button[type=submit]').click()"
    )
    assert await browser.location() == f"{server.url}/v1/dashboard"


async def session_cookie(browser: Browser) -> dict[str, Any] | None:
    found = [cookie for cookie in await browser.cookies() if cookie["name"] == DASHBOARD_COOKIE]
    return found[0] if found else None


@contextlib.asynccontextmanager
async def attacker_site(page: str) -> AsyncIterator[str]:
    """Another site (http://localhost:<port>, a different origin and site than 127.0.0.1) serving `page`."""
    body = page.encode()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://localhost:{port}/"
    finally:
        server.close()
        await server.wait_closed()


def auto_post(action: str, fields: dict[str, str]) -> str:
    inputs = "".join(f'<input type="hidden" name="{name}" value="{value}">' for name, value in fields.items())
    return (
        f'<!DOCTYPE html><html><body><form method="post" action="{action}">{inputs}</form>'
        "<script>document.forms[0].submit()</script></body></html>"
    )


def this_month(now: datetime, fraction: float) -> datetime:
    """An instant between the start of the current UTC month and now."""
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start + (now - start) * fraction


def live_events(tenant: str, now: datetime) -> list[CloudEvent]:
    events = []
    for number, (priority, elapsed) in enumerate(
        [("P1", 600), ("P1", 1500), ("P2", 1200), ("P2", 2400), ("P2", 4000), ("P3", 3000)]
    ):
        stop = this_month(now, 0.5 + number / 20)
        breached = elapsed > {"P1": 900, "P2": 3600, "P3": 14400}[priority]
        events.append(
            clock_event(
                tenant,
                f"DONE-{number}",
                "stopped_breached" if breached else "met",
                stop,
                metric="response",
                state="breached" if breached else "met",
                elapsed=elapsed,
                priority=priority,
                started_at=stop - timedelta(seconds=elapsed),
                stopped_at=stop,
                breached_at=stop - timedelta(seconds=60) if breached else None,
                calendar="24x7",
            )
        )
    for number, hours_over in enumerate((3, 1)):
        breached_at = now - timedelta(hours=hours_over)
        events.append(
            clock_event(
                tenant,
                f"LATE-{number}",
                "breached",
                breached_at,
                metric="resolution",
                state="running",
                elapsed=28800,
                priority="P2",
                started_at=breached_at - timedelta(hours=8),
                breached_at=breached_at,
                calendar="24x7",
            )
        )
    for number, hours_left in enumerate((1, 2, 30)):
        due = now + timedelta(hours=hours_left)
        events.append(
            clock_event(
                tenant,
                f"SOON-{number}",
                "started",
                now - timedelta(hours=2),
                metric="resolution",
                state="running",
                elapsed=7200,
                priority="P1",
                started_at=now - timedelta(hours=2),
                due_at=due,
                target=7200 + 3600 * hours_left,
                calendar="24x7",
            )
        )
    window = {"window_start": now - timedelta(days=28), "window_end": now}
    events.append(
        slo_status_event(
            tenant,
            now - timedelta(minutes=5),
            slo_id="email-availability",
            service="email",
            sli_value=99.95,
            objective=99.9,
            good=99950,
            total=100000,
            error_budget_total=100,
            error_budget_remaining=50,
            **window,
        )
    )
    events.append(
        slo_status_event(
            tenant,
            now - timedelta(minutes=5),
            slo_id="api-latency",
            service="api",
            sli_value=99.0,
            objective=99.5,
            good=99000,
            total=100000,
            error_budget_total=500,
            error_budget_remaining=-500,
            **window,
        )
    )
    return events


def count_near(image: Image.Image, color: tuple[int, int, int], tolerance: int = 12) -> int:
    red, green, blue = (channel.tobytes() for channel in image.convert("RGB").split())
    return sum(
        1
        for r, g, b in zip(red, green, blue, strict=True)
        if abs(r - color[0]) <= tolerance and abs(g - color[1]) <= tolerance and abs(b - color[2]) <= tolerance
    )


async def test_the_dashboard_renders_its_tables_and_charts_with_data_in_headless_chromium(
    reporting: Reporting, dashboard_server: ServiceProcess, tmp_path: Path
) -> None:
    tenant = await reporting.tenant("dash")
    now = datetime.now(UTC).replace(microsecond=0)
    events = live_events(tenant.name, now)
    await reporting.publish(events)
    await reporting.wait_applied(tenant.name, len(events))

    async with headless_chromium() as browser:
        await sign_in(browser, dashboard_server, tenant.key)
        generated = await browser.evaluate("document.getElementById('live').dataset.generatedAt")
        # The self-refresh script (allowed by the page's CSP nonce) replaces the live part within seconds.
        await browser.evaluate(
            "new Promise(done => { const first = document.getElementById('live').dataset.generatedAt;"
            " const check = () => document.getElementById('live').dataset.generatedAt !== first"
            " ? done(true) : setTimeout(check, 200); check(); })"
        )
        assert await browser.evaluate("document.getElementById('live').dataset.generatedAt") != generated
        dom = await browser.html()
        png = await browser.screenshot(1280, 1600)
        assert not [error for error in browser.console_errors() if "Content Security Policy" in error]
    breaches = dom.split('id="breaches"')[1].split("</table>")[0]
    assert breaches.count("<tr>") == 1 + 2
    assert "LATE-0" in breaches
    assert "LATE-1" in breaches
    assert "Breached for" in breaches
    soon = dom.split('id="about-to-breach"')[1].split("</table>")[0]
    assert "SOON-0" in soon
    assert "SOON-1" in soon
    assert "SOON-2" not in soon
    attainment = dom.split('id="attainment"')[1].split("</table>")[0]
    assert "1 / 2" in attainment
    assert "2 / 3" in attainment
    assert "email-availability" in dom
    assert "api-latency" in dom
    assert dom.count("<svg") >= 2
    assert dom.count('class="bar"') >= 4
    assert "refresh" in dom

    screenshot = tmp_path / "dashboard.png"
    screenshot.write_bytes(png)
    image = Image.open(screenshot)
    assert image.size == (1280, 1600)
    # The attainment bars and budget bars are drawn: red (P1 at 50 %, api-latency out of budget) and green.
    assert count_near(image, RED) > 1500
    assert count_near(image, GREEN) > 1500
    blank = count_near(image, (255, 255, 255), tolerance=2)
    assert blank < 0.95 * image.size[0] * image.size[1]


async def test_sign_in_then_sign_out_and_the_copied_session_cookie_opens_nothing(
    reporting: Reporting, dashboard_server: ServiceProcess
) -> None:
    tenant = await reporting.tenant("browser-out")
    async with headless_chromium() as browser:
        await sign_in(browser, dashboard_server, tenant.key)
        assert f"<b>{tenant.name}</b>" in await browser.html()
        cookie = await session_cookie(browser)
        assert cookie is not None
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert cookie["path"] == "/v1/dashboard"
        assert tenant.key not in cookie["value"]
        assert await browser.evaluate("document.cookie") == ""  # out of the page's scripts' reach
        stolen = cookie["value"]

        await browser.submit("document.getElementById('sign-out').click()")
        assert await browser.location() == f"{dashboard_server.url}/v1/dashboard/login"
        assert await session_cookie(browser) is None
        await browser.navigate(f"{dashboard_server.url}/v1/dashboard")
        assert await browser.location() == f"{dashboard_server.url}/v1/dashboard/login"

    async with httpx.AsyncClient(base_url=dashboard_server.url) as thief:
        thief.cookies.set(DASHBOARD_COOKIE, stolen, path="/v1/dashboard")
        page = await thief.get("/v1/dashboard")
        assert page.status_code == 303
        assert page.headers["location"] == "/v1/dashboard/login"
        assert (await thief.get("/v1/dashboard/data")).status_code == 401


async def test_a_session_ends_with_its_lifetime_in_the_browser(
    reporting: Reporting, expiring_server: ServiceProcess
) -> None:
    tenant = await reporting.tenant("browser-expiry")
    async with headless_chromium() as browser:
        await sign_in(browser, expiring_server, tenant.key)
        signed_in = time.monotonic()  # the session was opened before this instant
        assert f"<b>{tenant.name}</b>" in await browser.html()
        await asyncio.sleep(max(0.0, SESSION_LIFETIME_SECONDS + 1 - (time.monotonic() - signed_in)))
        await browser.navigate(f"{expiring_server.url}/v1/dashboard")
        assert await browser.location() == f"{expiring_server.url}/v1/dashboard/login"
        assert tenant.name not in await browser.html()


async def test_a_cross_site_form_can_neither_sign_the_browser_in_nor_out(
    reporting: Reporting, dashboard_server: ServiceProcess
) -> None:
    victim = await reporting.tenant("browser-victim")
    attacker = await reporting.tenant("browser-attacker")
    async with headless_chromium() as browser:
        # Login CSRF: a foreign page posts the attacker's key so the victim would work in the attacker's tenant.
        forged_login = auto_post(f"{dashboard_server.url}/v1/dashboard/login", {"key": attacker.key})
        async with attacker_site(forged_login) as url:
            await browser.navigate(url)
            await browser.wait_for_event("Page.loadEventFired", 0)
            for _ in range(100):
                if (await browser.location()).startswith(dashboard_server.url):
                    break
                await asyncio.sleep(0.1)
        assert await browser.location() == f"{dashboard_server.url}/v1/dashboard/login"
        assert "did not come from this site" in await browser.html()
        assert await session_cookie(browser) is None
        t = tables.dashboard_sessions
        async with reporting.sessions() as session:
            opened = (
                await session.execute(sa.select(sa.func.count()).select_from(t).where(t.c.tenant_id == attacker.name))
            ).scalar_one()
        assert opened == 0

        # A forged sign-out: refused, and the victim's session goes on.
        await sign_in(browser, dashboard_server, victim.key)
        forged_logout = auto_post(f"{dashboard_server.url}/v1/dashboard/logout", {})
        async with attacker_site(forged_logout) as url:
            await browser.navigate(url)
            for _ in range(100):
                if (await browser.location()).startswith(dashboard_server.url):
                    break
                await asyncio.sleep(0.1)
        assert await session_cookie(browser) is not None
        await browser.navigate(f"{dashboard_server.url}/v1/dashboard")
        assert await browser.location() == f"{dashboard_server.url}/v1/dashboard"
        assert f"<b>{victim.name}</b>" in await browser.html()


async def test_the_cookie_is_secure_and_hsts_sent_behind_a_trusted_tls_terminating_proxy(
    reporting: Reporting, dashboard_server: ServiceProcess, expiring_server: ServiceProcess
) -> None:
    tenant = await reporting.tenant("proxy")

    async def sign_in_through_tls_proxy(server: ServiceProcess) -> httpx.Response:
        origin = f"https://127.0.0.1:{server.port}"  # what the browser saw: the proxy's HTTPS address
        async with httpx.AsyncClient(base_url=server.url) as client:
            return await client.post(
                "/v1/dashboard/login",
                content=f"key={tenant.key}",
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Origin": origin,
                    "X-Forwarded-Proto": "https",
                    "X-Forwarded-For": "203.0.113.9",
                },
            )

    trusted = await sign_in_through_tls_proxy(dashboard_server)  # 127.0.0.1 is its configured proxy
    assert trusted.status_code == 303
    assert "; secure" in trusted.headers["set-cookie"].lower()
    assert trusted.headers["strict-transport-security"].startswith("max-age=")
    # Without a configured proxy the header is not believed: the request is plain HTTP and its https Origin
    # is not this site's.
    untrusted = await sign_in_through_tls_proxy(expiring_server)
    assert untrusted.status_code == 403
    assert "strict-transport-security" not in untrusted.headers
