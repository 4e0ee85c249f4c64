"""The three services as real processes on the real stack, shared by the end-to-end tests of a session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from scripts.localstack import Stack
from scripts.processes import ServiceProcess, create_api_key, wait_until_key_works


@dataclass
class Platform:
    stack: Stack
    intake: ServiceProcess
    sla_engine: ServiceProcess
    reporting: ServiceProcess

    @property
    def processes(self) -> list[ServiceProcess]:
        return [self.intake, self.sla_engine, self.reporting]


@dataclass(frozen=True)
class TenantClient:
    tenant: str
    key: str
    platform: Platform

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def client(self, service: ServiceProcess) -> httpx.Client:
        return httpx.Client(base_url=service.url, headers=self.headers, timeout=30)


@pytest.fixture(scope="session")
def platform(stack: Stack) -> Iterator[Platform]:
    started = Platform(
        stack,
        ServiceProcess("intake", stack).start(),
        ServiceProcess("sla-engine", stack).start(),
        ServiceProcess("reporting", stack).start(),
    )
    yield started
    for process in started.processes:
        process.stop()


@pytest.fixture
def tenant(platform: Platform) -> TenantClient:
    """A fresh tenant with a key every service accepts."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    key = create_api_key(platform.stack, name)
    wait_until_key_works([platform.sla_engine.url], key, "/v1/config")
    wait_until_key_works([platform.reporting.url], key, "/v1/reports/slr")
    return TenantClient(name, key, platform)
