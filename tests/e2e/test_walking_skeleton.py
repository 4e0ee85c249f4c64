"""One ticket end to end: intake -> sla-engine -> reporting, the response clock started and then met."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import TenantClient
from tests.support.events import RESPONSE_BUNDLE, ticket_event

pytestmark = pytest.mark.e2e


def wait_for_clock(tenant: TenantClient, ticket_id: str, state: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with tenant.client(tenant.platform.reporting) as reporting:
        while time.monotonic() < deadline:
            report = reporting.get("/v1/reports/slr", params={"format": "json"}).json()
            clocks = [c for c in report["clocks"] if c["ticket_id"] == ticket_id]
            if clocks and clocks[0]["state"] == state:
                found: dict[str, Any] = clocks[0]
                return found
            time.sleep(0.3)
    raise AssertionError(f"{ticket_id} never reached {state}")


def test_a_ticket_starts_a_response_clock_that_an_agent_reply_stops_as_met(tenant: TenantClient) -> None:
    with tenant.client(tenant.platform.sla_engine) as engine:
        applied = engine.post("/v1/config:apply", content=RESPONSE_BUNDLE, headers={"Content-Type": "application/yaml"})
        assert applied.status_code == 200, applied.text
        assert applied.json()["version"] == 1

    created_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    with tenant.client(tenant.platform.intake) as intake:
        answer = intake.post("/v1/events", json=ticket_event(tenant.tenant, "INC-1", created_at))
        assert answer.status_code == 202, answer.text
        assert answer.json()["results"][0]["result"] == "accepted"

        running = wait_for_clock(tenant, "INC-1", "running")
        assert running["policy_id"] == "gold-incidents"
        assert running["metric"] == "response"
        assert running["target_seconds"] == 3600
        assert datetime.fromisoformat(running["started_at"]) == created_at
        assert running["stopped_at"] is None

        replied_at = created_at + timedelta(minutes=5)
        answer = intake.post(
            "/v1/events",
            json=ticket_event(tenant.tenant, "INC-1", replied_at, action="agent_replied", status="in_progress"),
        )
        assert answer.json()["results"][0]["result"] == "accepted"

    met = wait_for_clock(tenant, "INC-1", "met")
    assert met["elapsed_seconds"] == 300
    assert met["breached"] is False
    assert datetime.fromisoformat(met["stopped_at"]) == replied_at
