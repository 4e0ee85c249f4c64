"""The three services as real processes on the real stack, shared by the end-to-end tests of a session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from scripts.localstack import Stack
from scripts.processes import LocalPlatform, ServiceProcess
from tests.support.otlp_collector import OtlpCollector


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
def otlp_collector() -> Iterator[OtlpCollector]:
    """Receives the spans every e2e service exports, as an OpenTelemetry collector would."""
    collector = OtlpCollector().start()
    yield collector
    collector.stop()


@pytest.fixture(scope="package")
def platform(stack: Stack, otlp_collector: OtlpCollector) -> Iterator[LocalPlatform]:
    """Stopped when the e2e package is done, so no running service touches the databases other tests use.

    Period close is off here: its loop works on every tenant of the shared reporting database, and the
    period-close tests drive it themselves. Tracing is on, exporting to the package's collector. The services
    verify key announcements with the stack's public key (`make up` writes it)."""
    tracing = {
        "tracing__exporter": "otlp",
        "tracing__otlp_endpoint": otlp_collector.endpoint,
        # The hostile suites fail authentication on purpose, hundreds of times from this one address;
        # the failed-authentication throttle has its own tests (tests/integration/intake/test_security.py).
        "auth_failure_burst": "1000000",
    }
    started = LocalPlatform.start(
        stack,
        intake=tracing,
        sla_engine={"clock_census_interval_seconds": "1", **tracing},
        reporting={"period_close_enabled": "false", **tracing},
    )
    yield started
    started.stop()


@pytest.fixture
def tenant(platform: LocalPlatform) -> TenantClient:
    """A fresh tenant with a key every service accepts."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    return TenantClient(name, platform.new_tenant(name), platform)
