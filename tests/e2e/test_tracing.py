"""One trace from the caller through intake, the sla-engine and reporting, carried in Kafka headers."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.conftest import TenantClient
from tests.e2e.test_walking_skeleton import wait_for_clock
from tests.support.events import RESPONSE_BUNDLE, ticket_event
from tests.support.otlp_collector import OtlpCollector, ReceivedSpan

pytestmark = pytest.mark.e2e


EXPECTED = {"POST /v1/events", "reconcile ticket", "apply itsm.ticket.v1", "apply sla.clock.v1"}


def wait_for_spans(collector: OtlpCollector, trace_id: str, timeout: float = 30) -> list[ReceivedSpan]:
    """Spans are exported in batches about once a second; wait until every expected one has arrived."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans = collector.trace(trace_id)
        if {span.name for span in spans} >= EXPECTED:
            return spans
        time.sleep(0.3)
    raise AssertionError(f"trace {trace_id} has only {collector.trace(trace_id)}")


def test_the_callers_trace_continues_through_every_service(tenant: TenantClient, otlp_collector: OtlpCollector) -> None:
    with tenant.client(tenant.platform.sla_engine) as engine:
        assert (
            engine.post(
                "/v1/config:apply", content=RESPONSE_BUNDLE, headers={"Content-Type": "application/yaml"}
            ).status_code
            == 200
        )
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    created_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    with tenant.client(tenant.platform.intake) as intake:
        answer = intake.post(
            "/v1/events",
            json=ticket_event(tenant.tenant, "INC-T", created_at),
            headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
        )
        assert answer.json()["results"][0]["result"] == "accepted"
    wait_for_clock(tenant, "INC-T", "running")

    spans = wait_for_spans(otlp_collector, trace_id)
    by_id = {span.span_id: span for span in spans}
    (received,) = [span for span in spans if span.service == "intake" and span.name == "POST /v1/events"]
    assert received.parent_span_id == caller_span
    # The engine's batch span links the record; the ticket's reconciliation is the intake span's child.
    (reconciled,) = [span for span in spans if span.name == "reconcile ticket"]
    assert reconciled.service == "sla-engine"
    assert reconciled.parent_span_id == received.span_id
    # Reporting applies both the ticket snapshot (from intake) and the clock transition (from the engine).
    applied = {span.name: span for span in spans if span.service == "reporting" and span.name.startswith("apply")}
    assert by_id[applied["apply sla.clock.v1"].parent_span_id] == reconciled
    assert by_id[applied["apply itsm.ticket.v1"].parent_span_id] == received
