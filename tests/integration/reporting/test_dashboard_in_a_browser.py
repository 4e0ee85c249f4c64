"""The live dashboard in headless Chromium, served by reporting as a real process: tables and charts with data."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from scripts.localstack import Stack
from scripts.processes import ServiceProcess
from slm_shared.events import CloudEvent
from tests.integration.reporting.conftest import Reporting
from tests.integration.reporting.events import clock_event, slo_status_event

pytestmark = pytest.mark.integration

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
GREEN, RED = (46, 125, 50), (198, 40, 40)


@pytest.fixture(scope="module")
def dashboard_server(stack: Stack) -> Iterator[ServiceProcess]:
    process = ServiceProcess(
        "reporting", stack, name="reporting-dashboard", kafka__group_id=f"reporting-dash-{uuid.uuid4().hex[:8]}",
        consumer_offset_reset="latest", period_close_enabled="false", dashboard_refresh_seconds="2",
    ).start()
    yield process
    process.stop()


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Debian's chromium is missing: run services/reporting/scripts/install-system-deps.sh",
                    pytrace=False)
    return found


async def run_chromium(*args: str) -> bytes:
    with tempfile.TemporaryDirectory() as profile:
        process = await asyncio.create_subprocess_exec(
            chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        stdout, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0
    return stdout


def this_month(now: datetime, fraction: float) -> datetime:
    """An instant between the start of the current UTC month and now."""
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start + (now - start) * fraction


def live_events(tenant: str, now: datetime) -> list[CloudEvent]:
    events = []
    for number, (priority, elapsed) in enumerate([("P1", 600), ("P1", 1500), ("P2", 1200), ("P2", 2400),
                                                  ("P2", 4000), ("P3", 3000)]):
        stop = this_month(now, 0.5 + number / 20)
        breached = elapsed > {"P1": 900, "P2": 3600, "P3": 14400}[priority]
        events.append(clock_event(
            tenant, f"DONE-{number}", "stopped_breached" if breached else "met", stop, metric="response",
            state="breached" if breached else "met", elapsed=elapsed, priority=priority,
            started_at=stop - timedelta(seconds=elapsed), stopped_at=stop,
            breached_at=stop - timedelta(seconds=60) if breached else None, calendar="24x7"))
    for number, hours_over in enumerate((3, 1)):
        breached_at = now - timedelta(hours=hours_over)
        events.append(clock_event(
            tenant, f"LATE-{number}", "breached", breached_at, metric="resolution", state="running",
            elapsed=28800, priority="P2", started_at=breached_at - timedelta(hours=8), breached_at=breached_at,
            calendar="24x7"))
    for number, hours_left in enumerate((1, 2, 30)):
        due = now + timedelta(hours=hours_left)
        events.append(clock_event(
            tenant, f"SOON-{number}", "started", now - timedelta(hours=2), metric="resolution", state="running",
            elapsed=7200, priority="P1", started_at=now - timedelta(hours=2), due_at=due, target=7200 + 3600 *
            hours_left, calendar="24x7"))
    window = {"window_start": now - timedelta(days=28), "window_end": now}
    events.append(slo_status_event(tenant, now - timedelta(minutes=5), slo_id="email-availability",
                                   service="email", sli_value=99.95, objective=99.9, good=99950, total=100000,
                                   error_budget_total=100, error_budget_remaining=50, **window))
    events.append(slo_status_event(tenant, now - timedelta(minutes=5), slo_id="api-latency", service="api",
                                   sli_value=99.0, objective=99.5, good=99000, total=100000, error_budget_total=500,
                                   error_budget_remaining=-500, **window))
    return events


def count_near(image: Image.Image, color: tuple[int, int, int], tolerance: int = 12) -> int:
    red, green, blue = (channel.tobytes() for channel in image.convert("RGB").split())
    return sum(1 for r, g, b in zip(red, green, blue, strict=True)
               if abs(r - color[0]) <= tolerance and abs(g - color[1]) <= tolerance and abs(b - color[2]) <= tolerance)


async def test_the_dashboard_renders_its_tables_and_charts_with_data_in_headless_chromium(
        reporting: Reporting, dashboard_server: ServiceProcess, tmp_path: Path) -> None:
    tenant = await reporting.tenant("dash")
    now = datetime.now(UTC).replace(microsecond=0)
    events = live_events(tenant.name, now)
    await reporting.publish(events)
    await reporting.wait_applied(tenant.name, len(events))

    url = f"{dashboard_server.url}/v1/dashboard?key={tenant.key}"  # the key moves into a cookie at once
    dom = (await run_chromium("--virtual-time-budget=6000", "--dump-dom", url)).decode()
    assert f"<b>{tenant.name}</b>" in dom
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
    assert dom.count("class=\"bar\"") >= 4
    assert "refresh" in dom  # the self-refresh script ran without replacing the page by an error

    screenshot = tmp_path / "dashboard.png"
    await run_chromium("--window-size=1280,1600", "--virtual-time-budget=3000", f"--screenshot={screenshot}", url)
    image = Image.open(screenshot)
    assert image.size == (1280, 1600)
    # The attainment bars and budget bars are drawn: red (P1 at 50 %, api-latency out of budget) and green.
    assert count_near(image, RED) > 1500
    assert count_near(image, GREEN) > 1500
    blank = count_near(image, (255, 255, 255), tolerance=2)
    assert blank < 0.95 * image.size[0] * image.size[1]
