"""A key sees its own tenant only: other tenants' snapshots are 404, reports and dashboards hold only its data."""

from __future__ import annotations

import pytest

from tests.integration.reporting.conftest import Reporting
from tests.integration.reporting.events import clock_event, local

pytestmark = pytest.mark.integration

SEPTEMBER = {"from": "2026-08-31T16:00:00Z", "to": "2026-09-30T16:00:00Z"}


async def test_another_tenants_key_finds_nothing_of_this_tenant(reporting: Reporting) -> None:
    owner = await reporting.tenant("owner")
    other = await reporting.tenant("other")
    await reporting.client.put("/v1/reporting-config", json={"timezone": "Asia/Shanghai"}, headers=owner.headers)
    events = [
        clock_event(
            owner.name,
            "SECRET-1",
            "stopped_breached",
            local("09-10 12:00"),
            metric="response",
            state="breached",
            elapsed=5000,
            priority="P2",
            started_at=local("09-10 10:00"),
            stopped_at=local("09-10 12:00"),
            breached_at=local("09-10 11:00"),
        ),
        clock_event(
            owner.name,
            "SECRET-2",
            "breached",
            local("09-10 12:00"),
            metric="resolution",
            state="running",
            elapsed=28800,
            priority="P2",
            started_at=local("09-09 10:00"),
            breached_at=local("09-10 12:00"),
        ),
    ]
    await reporting.publish(events)
    await reporting.wait_applied(owner.name, len(events))
    reporting.clock.pinned = local("11-20 12:00")
    published = (
        await reporting.client.post(
            "/v1/periods:close", json={"at": local("10-02 00:00").isoformat()}, headers=owner.headers
        )
    ).json()["published"]
    report_id = published[0]["report_id"]
    assert (await owner.get(f"/v1/reports/{report_id}")).status_code == 200

    for params in (
        {"format": "json"},
        {"format": "csv"},
        {"format": "html"},
        {"format": "pdf"},
        {"format": "csv", "table": "attainment"},
        {"lineage": "true"},
    ):
        answer = await other.get(f"/v1/reports/{report_id}", **params)
        assert answer.status_code == 404, params
    assert report_id not in (await other.get("/v1/reports")).text

    for fmt in ("json", "csv", "html"):
        answer = await other.get("/v1/reports/slr", **SEPTEMBER, format=fmt)
        assert answer.status_code == 200
        assert "SECRET" not in answer.text
        assert owner.name not in answer.text
    report = (await other.get("/v1/reports/slr", **SEPTEMBER)).json()
    assert report["header"]["tenant"] == other.name
    assert report["clocks"] == []
    assert report["summary"]["overall"] == {"numerator": 0, "denominator": 0, "percent": None}
    assert (await other.get("/v1/reporting-config")).json()["config"]["timezone"] == "UTC"

    for path in ("/v1/dashboard", "/v1/dashboard/data", "/v1/dashboard?fragment=true"):
        answer = await other.get(path)
        assert answer.status_code == 200
        assert "SECRET" not in answer.text
        assert owner.name not in answer.text
    owners_dashboard = await owner.get("/v1/dashboard")
    assert "SECRET-2" in owners_dashboard.text  # breached and still running: a current breach


async def test_without_a_valid_key_there_is_nothing_to_see(reporting: Reporting) -> None:
    client = reporting.client
    client.cookies.clear()
    assert (await client.get("/v1/reports/slr")).status_code == 401
    assert (await client.get("/v1/reports/slr", headers={"Authorization": "Bearer slm_x_y"})).status_code == 401
    assert (await client.get("/v1/reporting-config")).status_code == 401
    assert (await client.post("/v1/periods:close")).status_code == 401
    assert (await client.get("/v1/dashboard/data")).status_code == 401
    assert (await client.get("/v1/dashboard", params={"key": "slm_nope_nope"})).status_code == 400  # no keys in URLs
    answer = await client.get("/v1/dashboard")  # a browser without a key is sent to the login form
    assert answer.status_code == 303
    assert answer.headers["location"] == "/v1/dashboard/login"
    answer = await client.post(
        "/v1/dashboard/login",
        content="key=slm_nope_nope",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://reporting.test"},
    )
    assert answer.status_code == 401
    assert "not valid" in answer.text
