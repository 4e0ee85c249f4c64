"""The three services as real processes on the real stack, shared by the end-to-end tests of a session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from scripts.localstack import Stack
from scripts.processes import LocalPlatform, ServiceProcess


@dataclass(frozen=True)
class TenantClient:
    tenant: str
    key: str
    platform: LocalPlatform

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def client(self, service: ServiceProcess) -> httpx.Client:
        return httpx.Client(base_url=service.url, headers=self.headers, timeout=30)


@pytest.fixture(scope="package")
def platform(stack: Stack) -> Iterator[LocalPlatform]:
    """Stopped when the e2e package is done, so no running service touches the databases other tests use.

    Period close is off here: its loop works on every tenant of the shared reporting database, and the
    period-close tests drive it themselves."""
    started = LocalPlatform.start(stack, reporting={"period_close_enabled": "false"})
    yield started
    started.stop()


@pytest.fixture
def tenant(platform: LocalPlatform) -> TenantClient:
    """A fresh tenant with a key every service accepts."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    return TenantClient(name, platform.new_tenant(name), platform)
