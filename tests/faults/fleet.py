"""The services as real processes, N instances each, with a supervisor's restarts and an end-to-end probe."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import uuid
from datetime import UTC, datetime

import httpx

from scripts.localstack import Stack
from scripts.processes import ServiceProcess, create_api_key, wait_until_key_works

SERVICES = ("intake", "sla-engine", "reporting")
PROBE_BUNDLE = """
calendars: []
policies:
  - id: probe
    name: Probe
    agreement: SLA
    match: {kind: incident}
    metrics:
      - metric: response
        calendar: 24x7
        targets: {P2: 1h}
        stop: {actions: [agent_replied]}
"""


# The consumer groups the three services join (their defaults): a fleet starts them at the topics' end.
SERVICE_GROUPS = (
    "intake",
    "sla-engine",
    "sla-engine-signals",
    "sla-engine-api-keys",
    "reporting",
    "reporting-api-keys",
)


class Fleet:
    def __init__(self, stack: Stack, *, instances: int, prefix: str) -> None:
        # Period close works on every tenant of the shared reporting database: off, as in the e2e tests. Waiting
        # for a new key to reach every instance is a run of 401s from this one address: no failed-auth throttle.
        unthrottled = {"auth_failure_burst": "1000000"}
        settings = {"reporting": {"period_close_enabled": "false", **unthrottled}}
        self.instances = {
            service: [
                ServiceProcess(service, stack, name=f"{prefix}{service}-{n}", **settings.get(service, unthrottled))
                for n in range(instances)
            ]
            for service in SERVICES
        }
        self.stack = stack
        self.crash_restarts = 0  # a process that exited by itself, relaunched as Kubernetes would
        self.manual_restarts = 0  # an instance that never became ready again, restarted by hand
        self._probe_key = ""
        self.probe_stage = "not probed"

    @property
    def all(self) -> list[ServiceProcess]:
        return [process for group in self.instances.values() for process in group]

    def urls(self, service: str) -> list[str]:
        return [process.url for process in self.instances[service]]

    def start(self) -> None:
        for process in self.all:
            process.launch()
        for process in self.all:
            process.wait_ready(300)  # six interpreters starting at once on a busy 2-core machine

    def stop(self) -> None:
        for process in self.all:
            with contextlib.suppress(subprocess.TimeoutExpired):  # a stuck instance: stop() killed it
                process.stop()

    def new_tenant(self, tenant: str, bundle: str) -> str:
        key = create_api_key(self.stack, tenant, timeout=300)  # an interpreter start, on a busy machine
        wait_until_key_works(self.urls("sla-engine"), key, "/v1/config", timeout=300)
        wait_until_key_works(self.urls("reporting"), key, "/v1/reports/slr", timeout=300)
        answer = httpx.post(
            f"{self.urls('sla-engine')[0]}/v1/config:apply",
            content=bundle,
            timeout=60,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/yaml"},
        )
        answer.raise_for_status()
        return key

    def enable_probe(self) -> None:
        self._probe_key = self.new_tenant(f"probe-{uuid.uuid4().hex[:8]}", PROBE_BUNDLE)

    async def ready(self, process: ServiceProcess, client: httpx.AsyncClient) -> bool:
        try:
            return (await client.get(f"{process.url}/readyz", timeout=2)).status_code == 200
        except httpx.HTTPError:
            return False

    async def wait_ready(self, within: float) -> float | None:
        """Seconds until every instance answers /readyz 200, relaunching exited ones; None past `within`."""
        began = time.monotonic()
        async with httpx.AsyncClient() as client:
            while time.monotonic() - began < within:
                for process in self.all:
                    if process.process is not None and process.process.poll() is not None:
                        self.crash_restarts += 1
                        process.launch()
                answers = await asyncio.gather(*(self.ready(process, client) for process in self.all))
                if all(answers):
                    return time.monotonic() - began
                await asyncio.sleep(0.25)
        return None

    async def probe_flows(self, within: float) -> float | None:
        """Seconds until a new ticket posted to intake shows in reporting's read model: the whole path works.

        `probe_stage` says how far the last probe got, so a run that never flows says where it stopped."""
        began = time.monotonic()
        self.probe_stage = "not accepted by intake"
        ticket = f"PROBE-{uuid.uuid4().hex[:10]}"
        event = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "probe://faults",
            "type": "itsm.ticket.v1",
            "time": datetime.now(UTC).isoformat(),
            "subject": ticket,
            "data": {
                "ticket_id": ticket,
                "action": "created",
                "kind": "incident",
                "service": "email",
                "customer": "acme",
                "priority": "P2",
                "status": "new",
                "assignment_group": "probe",
            },
        }
        headers = {"Authorization": f"Bearer {self._probe_key}"}
        posted = False
        async with httpx.AsyncClient(headers=headers, timeout=10) as client:
            while time.monotonic() - began < within:
                try:
                    if not posted:
                        for url in self.urls("intake"):
                            answer = await client.post(f"{url}/v1/events", json=event)
                            if answer.status_code == 202:
                                posted = True
                                self.probe_stage = "accepted by intake, no clocks in the sla-engine"
                                break
                    else:
                        for url in self.urls("reporting"):
                            answer = await client.get(f"{url}/v1/reports/slr", params={"format": "json"})
                            if answer.status_code == 200 and any(
                                clock["ticket_id"] == ticket for clock in answer.json()["clocks"]
                            ):
                                self.probe_stage = "in reporting"
                                return time.monotonic() - began
                        if self.probe_stage.startswith("accepted"):
                            for url in self.urls("sla-engine"):
                                if (await client.get(f"{url}/v1/tickets/{ticket}/clocks")).status_code == 200:
                                    self.probe_stage = "clocks in the sla-engine, not in reporting's report"
                                    break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)
        return None

    async def restart_by_hand(self) -> None:
        """What an operator would do when nothing recovered by itself: restart every instance."""
        for process in self.all:
            self.manual_restarts += 1
            await asyncio.to_thread(process.kill)
            process.launch()
