"""Issue 18 item 2: whatever the batching, reporting's cycle ends up exactly as the engine's clock.

One ticket posted in three calls, each reconciled by the engine before the next is sent: the late pause of the
second call retracts the published breach (`recalculated`, published at processing time), and the third call's
resume, breach and stop are ordinary transitions dated in event time, earlier than that `recalculated`. Ordered
by event time, reporting dropped them and kept the paused cycle; ordered by the engine's per-cycle sequence,
it shows what the engine shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import TenantClient
from tests.support.events import ticket_event

pytestmark = pytest.mark.e2e

RESOLUTION_BUNDLE = """
calendars: []
policies:
  - id: gold-resolution
    name: Gold resolution
    agreement: SLA
    match: {kind: incident, customer: [acme]}
    metrics:
      - metric: resolution
        calendar: 24x7
        targets: {P2: 8h}
        pause: {statuses: [pending_customer]}
        stop: {statuses: [resolved, closed]}
        warn_at: [50, 75]
"""

# The fields of a cycle the report's `clocks` list shows, all of which the engine's clock has too.
REPORTED_FIELDS = (
    "policy_id",
    "policy_version",
    "agreement",
    "metric",
    "cycle",
    "state",
    "breached",
    "elapsed_seconds",
    "target_seconds",
    "started_at",
    "stopped_at",
    "breached_at",
    "due_at",
    "service",
    "customer",
    "priority",
)


INSTANT_FIELDS = frozenset({"started_at", "stopped_at", "breached_at", "due_at"})


def _shown(cycle: dict[str, Any]) -> dict[str, Any]:
    """The reported fields, instants parsed (the two services may write the same instant differently)."""
    return {
        f: datetime.fromisoformat(cycle[f]) if f in INSTANT_FIELDS and cycle[f] else cycle[f] for f in REPORTED_FIELDS
    }


def _engine_clock(tenant: TenantClient, ticket_id: str) -> dict[str, Any] | None:
    with tenant.client(tenant.platform.sla_engine) as engine:
        answer = engine.get(f"/v1/tickets/{ticket_id}/clocks")
        if answer.status_code == 404:
            return None
        clocks: list[dict[str, Any]] = answer.json()["clocks"]
        return clocks[0] if clocks else None


def _report_cycle(tenant: TenantClient, ticket_id: str) -> dict[str, Any] | None:
    with tenant.client(tenant.platform.reporting) as reporting:
        report = reporting.get("/v1/reports/slr", params={"format": "json"}).json()
    cycles = [c for c in report["clocks"] if c["ticket_id"] == ticket_id]
    return cycles[0] if cycles else None


def _until(what: str, probe: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"never: {what}")


def _post(tenant: TenantClient, events: list[dict[str, Any]]) -> None:
    with tenant.client(tenant.platform.intake) as intake:
        answer = intake.post("/v1/events", json=events)
        assert answer.status_code == 202, answer.text
        assert {r["result"] for r in answer.json()["results"]} == {"accepted"}


def _same_as_engine(cycle: dict[str, Any] | None, clock: dict[str, Any]) -> bool:
    return cycle is not None and _shown(cycle) == _shown(clock)


def test_a_ticket_posted_in_three_calls_is_reported_as_the_engine_clocks_it(tenant: TenantClient) -> None:
    with tenant.client(tenant.platform.sla_engine) as engine:
        applied = engine.post(
            "/v1/config:apply", content=RESOLUTION_BUNDLE, headers={"Content-Type": "application/yaml"}
        )
        assert applied.status_code == 200, applied.text
    ticket = "INC-ORDER-1"
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)

    def event(hours: float, **fields: Any) -> dict[str, Any]:
        return ticket_event(tenant.tenant, ticket, t0 + timedelta(hours=hours), **fields)

    # Call 1: created 20 days ago and never touched: warnings at 4 h and 6 h, breached at 8 h.
    _post(tenant, [event(0)])
    _until("the engine breaches the cycle", lambda: (c := _engine_clock(tenant, ticket)) and c["breached"])
    # Call 2, late: pending the customer from 5 h, so the 6 h warning and the 8 h breach were wrong.
    _post(tenant, [event(5, action="updated", status="pending_customer")])
    _until("the engine pauses the cycle", lambda: (c := _engine_clock(tenant, ticket)) and c["state"] == "paused")
    _until("reporting retracts the breach", lambda: (c := _report_cycle(tenant, ticket)) and not c["breached"])
    # Call 3: back in progress at 7 h (5 h elapsed), breached at 10 h, resolved at 16 h: 14 h elapsed.
    _post(tenant, [event(7, action="updated", status="in_progress"), event(16, action="resolved", status="resolved")])
    clock = _until(
        "the engine stops the cycle", lambda: (c := _engine_clock(tenant, ticket)) and c["state"] == "breached" and c
    )
    assert clock["elapsed_seconds"] == 14 * 3600
    assert _shown(clock)["stopped_at"] == t0 + timedelta(hours=16)
    assert _shown(clock)["breached_at"] == t0 + timedelta(hours=10)

    # Reporting converges to the engine's clock in every field it shows (polled: it follows asynchronously).
    deadline = time.monotonic() + 60
    cycle = _report_cycle(tenant, ticket)
    while not _same_as_engine(cycle, clock) and time.monotonic() < deadline:
        time.sleep(0.3)
        cycle = _report_cycle(tenant, ticket)
    assert cycle is not None
    assert _shown(cycle) == _shown(clock)
