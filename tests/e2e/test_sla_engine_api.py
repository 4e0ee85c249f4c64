"""The sla-engine's HTTP contract on the running services: versioned configuration with precise errors,
explained clocks at any instant, explicit recalculation with a diff report, what-if simulation, tenancy."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from scripts.processes import create_api_key, wait_until_key_works
from slm_shared import topics
from tests.e2e.conftest import TenantClient
from tests.support.events import AVAILABILITY_SLO_BUNDLE, availability_event, ticket_event
from tests.support.kafka import collect

pytestmark = pytest.mark.e2e
YAML = {"Content-Type": "application/yaml"}

BUSINESS_BUNDLE = """
calendars:
  - name: cn-business
    timezone: Asia/Shanghai
    hours: {mon-fri: ["09:00-12:00", "13:00-18:00"]}
policies:
  - id: gold-incidents
    name: Gold incidents
    agreement: SLA
    match: {kind: incident}
    metrics:
      - metric: resolution
        calendar: cn-business
        targets: {P2: 8h}
        pause: {statuses: [pending_customer]}
        stop: {statuses: [resolved, closed]}
"""


def resolution_bundle(p2_target: str) -> str:
    return f"""
policies:
  - id: gold-incidents
    name: Gold incidents
    agreement: SLA
    match: {{kind: incident}}
    metrics:
      - metric: resolution
        calendar: 24x7
        targets: {{P2: {p2_target}}}
        stop: {{statuses: [resolved, closed]}}
"""


def post_events(tenant: TenantClient, events: list[dict[str, Any]]) -> None:
    with tenant.client(tenant.platform.intake) as intake:
        for event in events:
            assert intake.post("/v1/events", json=event).json()["accepted"] == 1


def clocks_when(tenant: TenantClient, ticket: str, ready: Any, at: datetime | None = None) -> list[dict[str, Any]]:
    params = {"at": at.isoformat()} if at else {}
    deadline = time.monotonic() + 60
    with tenant.client(tenant.platform.sla_engine) as engine:
        while time.monotonic() < deadline:
            answer = engine.get(f"/v1/tickets/{ticket}/clocks", params=params)
            if answer.status_code == 200 and ready(answer.json()["clocks"]):
                return list(answer.json()["clocks"])
            time.sleep(0.3)
    raise AssertionError(f"clocks of {ticket} never became ready")


def test_a_bad_bundle_names_each_wrong_field_with_its_line_and_changes_nothing(tenant: TenantClient) -> None:
    bad = resolution_bundle("8h").replace("calendar: 24x7", "calendar: nowhere").replace("P2: 8h", "P2: 8 hours")
    with tenant.client(tenant.platform.sla_engine) as engine:
        assert engine.post("/v1/config:apply", content=resolution_bundle("8h"), headers=YAML).json()["version"] == 1
        answer = engine.post("/v1/config:apply", content=bad, headers=YAML)
        assert answer.status_code == 422
        errors = {e["path"]: e for e in answer.json()["errors"]}
        assert errors["policies[0].metrics[0].calendar"]["line"] == 9
        assert errors["policies[0].metrics[0].targets.P2"]["line"] == 10
        current = engine.get("/v1/config").json()
        assert current["version"] == 1
        assert "8h" in current["source"]


def test_every_apply_is_a_new_version(tenant: TenantClient) -> None:
    with tenant.client(tenant.platform.sla_engine) as engine:
        versions = [
            engine.post("/v1/config:apply", content=resolution_bundle(t), headers=YAML).json()["version"]
            for t in ("8h", "6h", "4h")
        ]
        assert versions == [1, 2, 3]
        assert "4h" in engine.get("/v1/config").json()["source"]


def test_a_clock_read_at_an_instant_explains_its_pause_and_the_weekend_it_skipped(tenant: TenantClient) -> None:
    with tenant.client(tenant.platform.sla_engine) as engine:
        assert engine.post("/v1/config:apply", content=BUSINESS_BUNDLE, headers=YAML).status_code == 200
    shanghai = timedelta(hours=8)
    friday = datetime(2026, 11, 6, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai
    post_events(
        tenant,
        [
            ticket_event(tenant.tenant, "INC-X", friday),
            ticket_event(
                tenant.tenant, "INC-X", friday + timedelta(hours=3), action="updated", status="pending_customer"
            ),
            ticket_event(
                tenant.tenant,
                "INC-X",
                friday + timedelta(days=3, hours=-4),
                action="customer_replied",
                status="in_progress",
            ),
        ],
    )
    monday_noon = datetime(2026, 11, 9, 12, 0, tzinfo=UTC) - shanghai
    # Ready once the engine has all three snapshots: the clock was paused and runs again.
    clocks = clocks_when(
        tenant,
        "INC-X",
        lambda cs: (
            len(cs) == 1
            and cs[0]["state"] == "running"
            and any(s["state"] == "paused" for s in cs[0]["explanation"])
            and cs[0]["explanation"][-1]["state"] == "running"
        ),
        monday_noon,
    )
    clock = clocks[0]
    # Friday 14:00-17:00 (3h), paused until Monday 10:00, then 10:00-12:00 (2h).
    assert clock["elapsed_seconds"] == 5 * 3600
    assert clock["due_at"] == "2026-11-09T08:00:00+00:00"  # Monday 16:00 in Shanghai: 3h left after 13:00
    running = [s for s in clock["explanation"] if s["state"] == "running"]
    assert [s["business_seconds"] for s in running][:2] == [3 * 3600, 2 * 3600]
    assert any(s["state"] == "paused" and "pending_customer" in s["condition"] for s in clock["explanation"])
    assert clock["deadline_reason"]

    earlier = clocks_when(tenant, "INC-X", lambda cs: len(cs) == 1, friday + timedelta(hours=1))
    assert earlier[0]["elapsed_seconds"] == 3600


async def test_recalculation_is_an_explicit_choice_with_a_report_of_what_changes(tenant: TenantClient) -> None:
    with tenant.client(tenant.platform.sla_engine) as engine:
        engine.post("/v1/config:apply", content=resolution_bundle("4h"), headers=YAML).raise_for_status()
    created = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    post_events(tenant, [ticket_event(tenant.tenant, "INC-R", created)])
    clocks_when(tenant, "INC-R", lambda cs: len(cs) == 1)

    with tenant.client(tenant.platform.sla_engine) as engine:
        untouched = engine.post(
            "/v1/config:apply", content=resolution_bundle("1h"), headers=YAML, params={"recalculate": "none"}
        ).json()
        assert untouched["clocks_changed"] == []
        assert engine.get("/v1/tickets/INC-R/clocks").json()["clocks"][0]["target_seconds"] == 4 * 3600

        report = engine.post(
            "/v1/config:apply", content=resolution_bundle("1h"), headers=YAML, params={"recalculate": "ongoing"}
        ).json()
        assert report["version"] == 3
        assert report["tickets_considered"] == 1
        [change] = report["clocks_changed"]
        assert change["ticket_id"] == "INC-R"
        assert change["before"]["breached"] is False
        assert change["after"]["breached"] is True
        assert change["after"]["breached_at"] == (created + timedelta(hours=1)).isoformat()
        now_clock = engine.get("/v1/tickets/INC-R/clocks").json()
        assert now_clock["config_version"] == 3
        assert now_clock["clocks"][0]["target_seconds"] == 3600

    events = await collect(
        tenant.platform.stack.kafka_bootstrap,
        topics.CLOCKS,
        lambda got: any(e["data"]["transition"] == "breached" for e in got),
        tenant=tenant.tenant,
    )
    breached = [e for e in events if e["data"]["transition"] == "breached"]
    assert [datetime.fromisoformat(e["time"]) for e in breached] == [created + timedelta(hours=1)]


async def test_simulation_compares_attainment_and_stores_and_emits_nothing(tenant: TenantClient) -> None:
    with tenant.client(tenant.platform.sla_engine) as engine:
        engine.post("/v1/config:apply", content=resolution_bundle("2h"), headers=YAML).raise_for_status()
    # Recent enough that no ticket is past the live 2h target before its resolution arrives: the live
    # record is then exactly two `started` and two `met`, with no breach to retract.
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(hours=6)
    post_events(
        tenant,
        [
            ticket_event(tenant.tenant, "INC-S1", now - timedelta(minutes=100)),
            ticket_event(tenant.tenant, "INC-S1", now - timedelta(minutes=10), action="resolved", status="resolved"),
            ticket_event(tenant.tenant, "INC-S2", now - timedelta(minutes=80)),
            ticket_event(tenant.tenant, "INC-S2", now - timedelta(minutes=50), action="resolved", status="resolved"),
        ],
    )
    before = await collect(
        tenant.platform.stack.kafka_bootstrap,
        topics.CLOCKS,
        lambda got: sum(e["data"]["transition"] == "met" for e in got) == 2,
        tenant=tenant.tenant,
    )
    assert sorted(e["data"]["transition"] for e in before) == ["met", "met", "started", "started"]

    with tenant.client(tenant.platform.sla_engine) as engine:
        answer = engine.post(
            "/v1/simulate",
            json={
                "bundle": resolution_bundle("1h"),
                "start": start.isoformat(),
                "end": (start + timedelta(hours=6)).isoformat(),
            },
        )
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert result["tickets"] == 2
        assert result["before"]["gold-incidents/resolution/P2"] == {"met": 2, "breached": 0, "percent": 100.0}
        assert result["after"]["gold-incidents/resolution/P2"] == {"met": 1, "breached": 1, "percent": 50.0}
        assert engine.get("/v1/config").json()["version"] == 1
    await asyncio.sleep(2)
    after = await collect(
        tenant.platform.stack.kafka_bootstrap, topics.CLOCKS, lambda got: len(got) >= len(before), tenant=tenant.tenant
    )
    assert len(after) == len(before)


def test_another_tenants_key_sees_nothing_of_this_tenant(tenant: TenantClient) -> None:
    with tenant.client(tenant.platform.sla_engine) as engine:
        engine.post("/v1/config:apply", content=resolution_bundle("8h"), headers=YAML).raise_for_status()
    post_events(tenant, [ticket_event(tenant.tenant, "INC-PRIVATE", datetime.now(UTC).replace(microsecond=0))])
    clocks_when(tenant, "INC-PRIVATE", lambda cs: len(cs) == 1)

    other = create_api_key(tenant.platform.stack, f"other-{uuid.uuid4().hex[:6]}")
    wait_until_key_works([tenant.platform.sla_engine.url], other, "/v1/config")
    headers = {"Authorization": f"Bearer {other}"}
    with httpx.Client(base_url=tenant.platform.sla_engine.url, headers=headers) as engine:
        assert engine.get("/v1/tickets/INC-PRIVATE/clocks").status_code == 404
        assert engine.get("/v1/config").status_code == 404
    with httpx.Client(base_url=tenant.platform.sla_engine.url) as anonymous:
        assert anonymous.get("/v1/config").status_code == 401
        assert anonymous.get("/v1/tickets/INC-PRIVATE/clocks").status_code == 401


def test_slo_status_is_read_over_http_for_the_keys_tenant_only(tenant: TenantClient) -> None:
    with tenant.client(tenant.platform.sla_engine) as engine:
        engine.post("/v1/config:apply", content=AVAILABILITY_SLO_BUNDLE, headers=YAML).raise_for_status()
    now = datetime.now(UTC).replace(microsecond=0)
    post_events(
        tenant,
        [
            availability_event(tenant.tenant, now - timedelta(hours=2), "up"),
            availability_event(tenant.tenant, now - timedelta(hours=1), "down"),
            availability_event(tenant.tenant, now - timedelta(minutes=30), "up"),
        ],
    )
    deadline = time.monotonic() + 60
    with tenant.client(tenant.platform.sla_engine) as engine:
        while True:
            listed = engine.get("/v1/slos")
            assert listed.status_code == 200, listed.text
            slos = listed.json()["slos"]
            if slos and slos[0]["error_budget"]["consumed"] == 1_800:
                break
            assert time.monotonic() < deadline, slos
            time.sleep(0.3)
        assert listed.json()["config_version"] == 1
        one = engine.get("/v1/slos/email-availability").json()
        assert engine.get("/v1/slos/nothing-like-it").status_code == 404
    # 5 % of a day is 4,320 s; 30 minutes down leave 2,520 s. Over the last 2 h (the only data) 25 % is bad,
    # a 5x burn on 1d and 2h: a ticket, no page (the last 30 minutes are clean).
    assert (one["slo_id"], one["service"], one["objective"]) == ("email-availability", "email", 95)
    assert one["sli"] == {"type": "availability"}
    assert one["window"] == {"rolling": "1d"}
    assert one["error_budget"]["total"] == pytest.approx(4_320)
    assert one["error_budget"]["consumed"] == 1_800
    assert one["error_budget"]["remaining"] == pytest.approx(2_520)
    assert one["total"] - one["good"] == 1_800
    assert [alert["alert"] for alert in one["alerts"]] == ["ticket"]
    # At the rolling window's average rate (1,800 s per day) the 2,520 s left last 1.4 days.
    assert datetime.fromisoformat(one["exhaustion_at"]) - datetime.fromisoformat(one["at"]) == timedelta(
        seconds=120_960
    )

    other = create_api_key(tenant.platform.stack, f"other-{uuid.uuid4().hex[:6]}")
    wait_until_key_works([tenant.platform.sla_engine.url], other, "/v1/slos")
    with httpx.Client(base_url=tenant.platform.sla_engine.url, headers={"Authorization": f"Bearer {other}"}) as engine:
        assert engine.get("/v1/slos").json()["slos"] == []
        assert engine.get("/v1/slos/email-availability").status_code == 404
    with httpx.Client(base_url=tenant.platform.sla_engine.url) as anonymous:
        assert anonymous.get("/v1/slos").status_code == 401
        assert anonymous.post("/v1/config:import-openslo", content="kind: SLO").status_code == 401


OPENSLO = """\
apiVersion: openslo/v1
kind: SLI
metadata: {name: latency_ms}
spec:
  thresholdMetric: {metricSource: {type: Prometheus, spec: {query: 'p99_latency'}}}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: api-latency, displayName: API latency}
spec:
  service: api
  indicatorRef: latency_ms
  timeWindow: [{duration: 28d, isRolling: true}]
  budgetingMethod: RatioTimeslices
  objectives: [{op: lte, value: 300, target: 0.99, timeSliceWindow: 5m}]
"""


def test_openslo_documents_convert_to_a_bundle_section_that_applies(tenant: TenantClient) -> None:
    with tenant.client(tenant.platform.sla_engine) as engine:
        converted = engine.post("/v1/config:import-openslo", content=OPENSLO, headers=YAML)
        assert converted.status_code == 200, converted.text
        body = converted.json()
        assert body["slos"] == [
            {
                "id": "api-latency",
                "service": "api",
                "sli": {"type": "threshold", "sli": "latency_ms", "op": "<=", "value": 300},
                "objective": "99",
                "window": {"rolling": "28d"},
                "budgeting": "ratio_timeslices",
                "timeslice": "5m",
            }
        ]
        assert "documents[1].metadata.displayName: not carried over" in body["notes"]
        applied = engine.post("/v1/config:apply", content=body["yaml"], headers=YAML)
        assert applied.status_code == 200, applied.text
        assert [slo["slo_id"] for slo in engine.get("/v1/slos").json()["slos"]] == ["api-latency"]

        refused = engine.post(
            "/v1/config:import-openslo", content=OPENSLO.replace("timeSliceWindow: 5m", "timeSliceWindow: 7m")
        )
        assert refused.status_code == 422
        assert refused.json()["errors"] == [
            "slos[0] (api-latency).timeslice: '7m' is not whole minutes dividing a day (e.g. 1m, 5m, 1h, 1d)"
        ]
