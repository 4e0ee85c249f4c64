"""Two instances of every service, under a stream of tickets, survive a PostgreSQL crash without any restart.

What the fault run did (issue 18): six service processes on the real stack, tickets streaming in through
both intakes, then `pg_ctl stop -m immediate` on the stack's own PostgreSQL, down a few seconds, started again.
Every instance must report unready (alive all along), become ready again by itself, and every ticket an
intake acknowledged, before, during (the sender retries 503s as a webhook sender does) and after the
outage, must reach both the sla-engine's clocks and reporting's read model. A tenant created after the
restart must be accepted by every instance: the API-key consumers of each service came back too.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from scripts import outages
from scripts.localstack import Stack
from scripts.processes import ServiceProcess, create_api_key, wait_until_key_works
from tests.support.events import ticket_event

pytestmark = pytest.mark.integration

SERVICES = ("intake", "sla-engine", "reporting")
TIMEOUT = 180.0  # guards against a hang on a loaded 2-core machine; recovery times are bench/recovery's
BUNDLE = """
calendars: []
policies:
  - id: outage
    name: Outage
    agreement: SLA
    match: {kind: incident}
    metrics:
      - metric: response
        calendar: 24x7
        targets: {P2: 1h}
        stop: {actions: [agent_replied]}
"""


class Fleet:
    def __init__(self, stack: Stack) -> None:
        settings = {"reporting": {"period_close_enabled": "false"}}
        self.instances = {
            service: [
                ServiceProcess(service, stack, name=f"two-{service}-{n}", **settings.get(service, {})) for n in range(2)
            ]
            for service in SERVICES
        }
        self.stack = stack

    @property
    def all(self) -> list[ServiceProcess]:
        return [process for group in self.instances.values() for process in group]

    def urls(self, service: str) -> list[str]:
        return [process.url for process in self.instances[service]]

    def pids(self) -> dict[str, int]:
        return {process.name: process.process.pid for process in self.all if process.process is not None}

    def exited(self) -> list[str]:
        return [process.name for process in self.all if process.process is None or process.process.poll() is not None]

    def tenant(self, name: str) -> str:
        key = create_api_key(self.stack, name, timeout=TIMEOUT)
        wait_until_key_works(self.urls("sla-engine"), key, "/v1/config", timeout=TIMEOUT)
        wait_until_key_works(self.urls("reporting"), key, "/v1/reports/slr", timeout=TIMEOUT)
        return key


@pytest.fixture(scope="module")
def fleet(stack: Stack) -> Iterator[Fleet]:
    started = Fleet(stack)
    try:
        for process in started.all:
            process.launch()
        for process in started.all:
            process.wait_ready(TIMEOUT)
        yield started
    finally:
        for process in started.all:
            with contextlib.suppress(Exception):
                process.stop()


async def statuses(urls: list[str], path: str) -> list[int]:
    async with httpx.AsyncClient(timeout=5) as client:

        async def status(url: str) -> int:
            try:
                return (await client.get(f"{url}{path}")).status_code
            except httpx.HTTPError:
                return 0

        return list(await asyncio.gather(*(status(url) for url in urls)))


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `condition()` until true; fails after TIMEOUT (a hang, not a slow recovery)."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.25)


class Sender:
    """Posts one new ticket at a time, alternating intakes, retrying refusals and 503s until acknowledged."""

    def __init__(self, fleet: Fleet, tenant: str, key: str) -> None:
        self._urls = fleet.urls("intake")
        self._tenant = tenant
        self._headers = {"Authorization": f"Bearer {key}"}
        self.acknowledged: list[str] = []
        self.refusals: dict[int, int] = {}  # status (0: no answer) -> how many times
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        turn = 0
        async with httpx.AsyncClient(headers=self._headers, timeout=10) as client:
            while not self.stopping.is_set():
                ticket = f"INC-{len(self.acknowledged)}"
                event = ticket_event(self._tenant, ticket, datetime.now(UTC))
                while True:
                    turn += 1
                    try:
                        answer = await client.post(f"{self._urls[turn % 2]}/v1/events", json=event)
                        status = answer.status_code
                    except httpx.HTTPError:
                        status = 0
                    if status == 202:
                        break
                    assert status in (0, 503), f"intake answered {status} during the outage"
                    self.refusals[status] = self.refusals.get(status, 0) + 1
                    await asyncio.sleep(0.3)
                self.acknowledged.append(ticket)
                await asyncio.sleep(0.2)


async def reported_tickets(fleet: Fleet, key: str) -> set[str]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        answer = await client.get(f"{fleet.urls('reporting')[0]}/v1/reports/slr", params={"format": "json"})
        if answer.status_code != 200:
            return set()
        return {clock["ticket_id"] for clock in answer.json()["clocks"]}


async def clocked_tickets(fleet: Fleet, key: str, tickets: list[str]) -> set[str]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:

        async def clocked(ticket: str) -> str | None:
            answer = await client.get(f"{fleet.urls('sla-engine')[1]}/v1/tickets/{ticket}/clocks")
            return ticket if answer.status_code == 200 and answer.json().get("clocks") else None

        found = await asyncio.gather(*(clocked(ticket) for ticket in tickets))
    return {ticket for ticket in found if ticket is not None}


async def test_every_instance_comes_back_by_itself_after_a_postgres_crash_under_load_and_nothing_is_lost(
    fleet: Fleet,
) -> None:
    tenant = f"two-{uuid.uuid4().hex[:8]}"
    key = await asyncio.to_thread(fleet.tenant, tenant)
    async with httpx.AsyncClient(timeout=60) as client:
        applied = await client.post(
            f"{fleet.urls('sla-engine')[0]}/v1/config:apply",
            content=BUNDLE,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/yaml"},
        )
        assert applied.status_code in (200, 201), applied.text
    pids = fleet.pids()
    sender = Sender(fleet, tenant, key)
    sending = asyncio.create_task(sender.run())
    try:
        await until(lambda: _at_least(sender, 5), "no ticket was acknowledged before the outage")
        await asyncio.to_thread(outages.stop_postgres)
        try:
            await until(lambda: _all_are(fleet, "/readyz", 503), "not every instance reported unready")
            assert await statuses([p.url for p in fleet.all], "/healthz") == [200] * 6  # alive all along
            await asyncio.sleep(3)  # the outage goes on a little, under the sender's retries
        finally:
            await asyncio.to_thread(outages.start_postgres)
        await until(lambda: _all_are(fleet, "/readyz", 200), "an instance did not become ready again by itself")
        during = len(sender.acknowledged)
        await until(lambda: _at_least(sender, during + 5), "no ticket was acknowledged after the outage")
    finally:
        sender.stopping.set()
        await sending
    assert fleet.exited() == []
    assert fleet.pids() == pids  # nobody restarted anything
    assert sender.refusals  # the outage was really met: intake refused (503) or could not answer

    wanted = set(sender.acknowledged)
    await until(
        lambda: _contains(reported_tickets(fleet, key), wanted),
        "an acknowledged ticket never reached reporting's read model",
    )
    assert await clocked_tickets(fleet, key, sorted(wanted)) == wanted

    # The API-key consumers of every instance are back: a tenant created now is accepted everywhere.
    late = await asyncio.to_thread(fleet.tenant, f"two-late-{uuid.uuid4().hex[:8]}")
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {late}"}, timeout=30) as client:
        for url in fleet.urls("sla-engine"):
            assert (await client.get(f"{url}/v1/config")).status_code != 401
        for url in fleet.urls("reporting"):
            assert (await client.get(f"{url}/v1/reports/slr")).status_code != 401


async def _at_least(sender: Sender, count: int) -> bool:
    return len(sender.acknowledged) >= count


async def _all_are(fleet: Fleet, path: str, status: int) -> bool:
    return await statuses([process.url for process in fleet.all], path) == [status] * len(fleet.all)


async def _contains(found: Awaitable[set[str]], wanted: set[str]) -> bool:
    return wanted <= await found
