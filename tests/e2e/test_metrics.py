"""What /metrics tells an operator: clocks by state from the sla-engine, report generation time from reporting."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scripts.processes import ServiceProcess
from tests.e2e.conftest import TenantClient
from tests.e2e.test_walking_skeleton import wait_for_clock
from tests.support.events import RESPONSE_BUNDLE, ticket_event

pytestmark = pytest.mark.e2e


def samples(service: ServiceProcess, name: str, **labels: str) -> list[float]:
    """The values of every series of `name` with these labels on the service's /metrics."""
    text = httpx.get(f"{service.url}/metrics", timeout=10).text
    return [
        found.value
        for family in text_string_to_metric_families(text)
        for found in family.samples
        if found.name == name and all(found.labels.get(k) == v for k, v in labels.items())
    ]


def sample(service: ServiceProcess, name: str, **labels: str) -> float:
    """One series' value (0 when the series is not there yet)."""
    return sum(samples(service, name, **labels))


def test_the_clock_census_counts_a_new_running_clock(tenant: TenantClient) -> None:
    engine_process = tenant.platform.sla_engine
    with tenant.client(engine_process) as engine:
        assert (
            engine.post(
                "/v1/config:apply", content=RESPONSE_BUNDLE, headers={"Content-Type": "application/yaml"}
            ).status_code
            == 200
        )
    # The gauge counts every tenant's clocks, and earlier tests' clocks may still move between states; the
    # total only grows with new clocks, and no other test opens tickets meanwhile.
    before = sample(engine_process, "slm_clocks")
    opened = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    with tenant.client(tenant.platform.intake) as intake:
        for ticket in ("INC-M1", "INC-M2"):
            assert intake.post("/v1/events", json=ticket_event(tenant.tenant, ticket, opened)).status_code == 202
    wait_for_clock(tenant, "INC-M2", "running")
    wait_for_clock(tenant, "INC-M1", "running")
    deadline = time.monotonic() + 15
    while sample(engine_process, "slm_clocks") < before + 2:
        assert time.monotonic() < deadline, "the census never counted the two new clocks"
        time.sleep(0.5)
    assert sample(engine_process, "slm_clocks", state="running", breached="false") >= 2  # ours: 1 h target
    # Every state is reported, an empty one as 0, so a dashboard never shows a gap for "no clocks".
    assert len(samples(engine_process, "slm_clocks")) == 10  # 5 states x breached true/false


def test_each_report_request_is_timed_by_kind_and_format(tenant: TenantClient) -> None:
    reporting_process = tenant.platform.reporting
    before = sample(reporting_process, "slm_report_generation_seconds_count", kind="live", format="csv")
    with tenant.client(reporting_process) as reporting:
        for _ in range(2):
            assert reporting.get("/v1/reports/slr", params={"format": "csv"}).status_code == 200
    assert sample(reporting_process, "slm_report_generation_seconds_count", kind="live", format="csv") == before + 2
    assert sample(reporting_process, "slm_report_generation_seconds_sum", kind="live", format="csv") > 0


def test_each_service_reports_the_lag_of_every_consumer_group_it_runs(tenant: TenantClient) -> None:
    expected = {
        tenant.platform.intake: {("intake", "itsm.ingest.v1")},
        tenant.platform.sla_engine: {
            ("sla-engine", "itsm.tickets.v1"),
            ("sla-engine-signals", "itsm.signals.v1"),
            ("sla-engine-api-keys", "itsm.tenants.v1"),
        },
        tenant.platform.reporting: {
            ("reporting", "sla.clocks.v1"),
            ("reporting", "itsm.tickets.v1"),
            ("reporting", "slo.status.v1"),
            ("reporting-api-keys", "itsm.tenants.v1"),
        },
    }
    for service, series in expected.items():
        text = httpx.get(f"{service.url}/metrics", timeout=10).text
        reported = {
            (s.labels["group"], s.labels["topic"])
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "slm_consumer_lag"
        }
        assert series <= reported, f"{service.name} reports {reported}"
