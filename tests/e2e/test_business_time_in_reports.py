"""A running clock on a business calendar is reported at the report's instant, counted in that calendar's working
time: the bundle apply announces the calendar (`sla.calendars.v1`), reporting keeps it, and the report brings the
clock forward. The three services as real processes.

The calendar counts every hour of every day except one company holiday ten days ago, so the expected figure is
worked out from the calendar alone: a clock started twenty days ago and never touched since has run, at the
report's instant R, (R - start) - 86,400 working seconds (whole seconds, as the engine floors them). Reporting
holds the cycle as the engine published it when the clock started (0 s elapsed); without the calendar it could
only show that, "as of" the start.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import TenantClient
from tests.support.events import ticket_event

pytestmark = pytest.mark.e2e

TARGET_HOURS = 1_000  # far beyond the twenty days the clock runs: no warning, no breach, one transition


def bundle(holiday: str) -> str:
    return f"""
calendars:
  - name: all-week-but-a-holiday
    timezone: UTC
    hours: {{mon-sun: ["00:00-24:00"]}}
    extra_holidays: ["{holiday}"]
policies:
  - id: long-resolution
    name: Long resolution
    agreement: SLA
    match: {{kind: incident, customer: [acme]}}
    metrics:
      - metric: resolution
        calendar: all-week-but-a-holiday
        targets: {{P2: {TARGET_HOURS}h}}
        stop: {{statuses: [resolved, closed]}}
"""


def _report_cycle(tenant: TenantClient, ticket_id: str) -> tuple[dict[str, Any], datetime] | None:
    with tenant.client(tenant.platform.reporting) as reporting:
        report = reporting.get("/v1/reports/slr", params={"format": "json"}).json()
    cycles = [c for c in report["clocks"] if c["ticket_id"] == ticket_id]
    return (cycles[0], datetime.fromisoformat(report["header"]["generated_at"])) if cycles else None


def test_a_running_business_time_clock_is_reported_live_with_the_announced_calendar(tenant: TenantClient) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)
    holiday = (start + timedelta(days=10)).date()
    with tenant.client(tenant.platform.sla_engine) as engine:
        applied = engine.post(
            "/v1/config:apply", content=bundle(holiday.isoformat()), headers={"Content-Type": "application/yaml"}
        )
        assert applied.status_code == 200, applied.text
    with tenant.client(tenant.platform.intake) as intake:
        answer = intake.post("/v1/events", json=[ticket_event(tenant.tenant, "INC-BT-1", start)])
        assert answer.status_code == 202, answer.text

    deadline = time.monotonic() + 90
    found = _report_cycle(tenant, "INC-BT-1")
    while (found is None or not found[0]["live"]) and time.monotonic() < deadline:
        time.sleep(0.5)
        found = _report_cycle(tenant, "INC-BT-1")
    assert found is not None, "the cycle never reached the report"
    cycle, generated_at = found
    # The report's instant is its generation time: the default period (this month) is not over.
    expected = math.floor(generated_at.timestamp()) - math.floor(start.timestamp()) - 86_400
    assert cycle["state"] == "running"
    assert cycle["live"] is True
    assert cycle["elapsed_seconds"] == expected
    assert cycle["remaining_seconds"] == TARGET_HOURS * 3600 - expected
