"""Service SLOs end to end: signals posted to intake, slo.status.v1 and slo.alert.v1 out, a late signal corrects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from slm_shared import topics
from tests.e2e.conftest import TenantClient
from tests.support.events import AVAILABILITY_SLO_BUNDLE, availability_event
from tests.support.kafka import collect

pytestmark = pytest.mark.e2e


def post(tenant: TenantClient, events: list[dict[str, Any]]) -> None:
    with tenant.client(tenant.platform.intake) as intake:
        answer = intake.post("/v1/events", json=events, headers={"Content-Type": "application/cloudevents-batch+json"})
        assert answer.status_code == 202, answer.text
        assert {result["result"] for result in answer.json()["results"]} == {"accepted"}, answer.text


def downtime(events: list[dict[str, Any]]) -> list[float]:
    return [
        event["data"]["total"] - event["data"]["good"]
        for event in events
        if event["data"]["slo_id"] == "email-availability"
    ]


async def test_signals_give_status_and_alerts_and_a_late_signal_corrects_the_status(tenant: TenantClient) -> None:
    with tenant.client(tenant.platform.sla_engine) as engine:
        applied = engine.post(
            "/v1/config:apply", content=AVAILABILITY_SLO_BUNDLE, headers={"Content-Type": "application/yaml"}
        )
        assert applied.status_code == 200, applied.text
    now = datetime.now(UTC).replace(microsecond=0)
    post(
        tenant,
        [
            availability_event(tenant.tenant, now - timedelta(hours=2), "up"),
            availability_event(tenant.tenant, now - timedelta(hours=1), "down"),
            availability_event(tenant.tenant, now - timedelta(minutes=30), "up"),
        ],
    )

    bootstrap = tenant.platform.stack.kafka_bootstrap
    statuses = await collect(
        bootstrap, topics.SLO_STATUS, lambda found: 1_800 in downtime(found), tenant=tenant.tenant, within=90
    )
    assert 1_800 in downtime(statuses)
    first = statuses[-1]["data"]
    assert first["objective"] == 95
    assert first["error_budget_total"] == pytest.approx(4_320)  # 5 % of a day

    # 30 minutes down within the last 2 hours and the day: 5x over 2h and 1d opens a ticket, exactly once.
    alerts = await collect(
        bootstrap,
        topics.SLO_ALERTS,
        lambda found: any(e["data"]["alert"] == "ticket" for e in found),
        tenant=tenant.tenant,
        within=60,
    )
    assert [(e["data"]["alert"], e["data"]["state"]) for e in alerts] == [("ticket", "firing")]

    # A late signal: the service actually came back 15 minutes into the outage.
    post(tenant, [availability_event(tenant.tenant, now - timedelta(minutes=45), "up")])
    statuses = await collect(
        bootstrap, topics.SLO_STATUS, lambda found: 900 in downtime(found), tenant=tenant.tenant, within=90
    )
    assert downtime(statuses)[-1] == 900
    assert statuses[-1]["data"]["error_budget_remaining"] == pytest.approx(4_320 - 900)


async def test_a_recurring_maintenance_window_in_the_bundle_excludes_an_outage(tenant: TenantClient) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(hours=1)
    bundle = AVAILABILITY_SLO_BUNDLE.replace(
        "    sli: {type: availability}\n",
        f"""\
    sli:
      type: availability
      maintenance: [{{rrule: "FREQ=DAILY", dtstart: "{start.strftime("%Y-%m-%dT%H:%M")}", duration: 30m}}]
""",
    )
    with tenant.client(tenant.platform.sla_engine) as engine:
        applied = engine.post("/v1/config:apply", content=bundle, headers={"Content-Type": "application/yaml"})
        assert applied.status_code == 200, applied.text
    post(
        tenant,
        [
            availability_event(tenant.tenant, now - timedelta(hours=2), "up"),
            availability_event(tenant.tenant, start, "down"),
            availability_event(tenant.tenant, now - timedelta(minutes=30), "up"),
        ],
    )

    statuses = await collect(
        tenant.platform.stack.kafka_bootstrap,
        topics.SLO_STATUS,
        lambda found: any(event["data"]["total"] >= 5_400 for event in found),
        tenant=tenant.tenant,
        within=90,
    )
    status = statuses[-1]["data"]
    # The whole outage lies in today's window (UTC, the default zone): nothing is down, and the day's agreed
    # time is 86,400 - 1,800 s, so the budget is 5 % of 84,600 = 4,230 s.
    assert status["total"] == status["good"]
    assert status["error_budget_total"] == pytest.approx(4_230)
    with tenant.client(tenant.platform.sla_engine) as engine:
        (slo,) = engine.get("/v1/slos").json()["slos"]
    assert slo["error_budget"]["consumed"] == 0
    assert slo["alerts"] == []
