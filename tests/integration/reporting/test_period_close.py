"""Period close: snapshots frozen and published once per period and scope, late events as amendments."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from reporting import tables
from reporting.closing import MAX_BACKFILL_PERIODS, PeriodCloser
from reporting.reports import canonical_bytes
from reporting.unit_of_work import ReportingUnitOfWork
from slm_shared import topics
from slm_shared.events import CloudEvent
from tests.integration.reporting.conftest import Reporting, Tenant
from tests.integration.reporting.events import clock_event, local
from tests.support.kafka import collect

pytestmark = pytest.mark.integration

CONFIG = {"timezone": "Asia/Shanghai", "close_delay_seconds": 3600, "publish_scopes": [{}, {"customer": "acme"}]}
SEPTEMBER = {"from": "2026-08-31T16:00:00Z", "to": "2026-09-30T16:00:00Z"}


def september(tenant: str) -> list[CloudEvent]:
    """Two P2 responses (one breached) and a P1 resolution, all stopped in September (Asia/Shanghai)."""
    return [
        clock_event(
            tenant,
            "INC-1",
            "met",
            local("09-14 09:20"),
            metric="response",
            state="met",
            elapsed=1200,
            priority="P2",
            started_at=local("09-14 09:00"),
            stopped_at=local("09-14 09:20"),
        ),
        clock_event(
            tenant,
            "INC-2",
            "stopped_breached",
            local("09-15 11:00"),
            metric="response",
            state="breached",
            elapsed=5400,
            priority="P2",
            started_at=local("09-15 09:00"),
            stopped_at=local("09-15 11:00"),
            breached_at=local("09-15 10:00"),
        ),
        clock_event(
            tenant,
            "INC-3",
            "met",
            local("09-30 23:00"),
            metric="resolution",
            state="met",
            elapsed=7200,
            priority="P1",
            started_at=local("09-30 13:00"),
            stopped_at=local("09-30 23:00"),
            customer="globex",
        ),
    ]


async def configured_tenant(reporting: Reporting, prefix: str) -> Tenant:
    tenant = await reporting.tenant(prefix)
    answer = await reporting.client.put("/v1/reporting-config", json=CONFIG, headers=tenant.headers)
    assert answer.status_code == 200, answer.text
    events = september(tenant.name)
    await reporting.publish(events)
    await reporting.wait_applied(tenant.name, len(events))
    return tenant


async def close(tenant: Tenant, at: datetime) -> list[dict[str, object]]:
    tenant.reporting.clock.pinned = local("11-20 12:00")  # "now" of the service, after `at`
    answer = await tenant.reporting.client.post(
        "/v1/periods:close", json={"at": at.isoformat()}, headers=tenant.headers
    )
    assert answer.status_code == 200, answer.text
    published: list[dict[str, object]] = answer.json()["published"]
    return published


def units(reporting: Reporting) -> Callable[[], ReportingUnitOfWork]:
    return lambda: ReportingUnitOfWork(reporting.sessions)


async def test_a_period_closes_once_its_close_delay_has_passed_with_one_snapshot_per_scope(
    reporting: Reporting,
) -> None:
    tenant = await configured_tenant(reporting, "close")
    assert await close(tenant, local("10-01 00:30")) == []  # September ended 30 minutes ago: not yet
    published = await close(tenant, local("10-01 01:30"))
    assert [(p["label"], p["scope"], p["revision"], p["kind"]) for p in published] == [
        ("2026-09", {"service": None, "customer": None}, 0, "original"),
        ("2026-09", {"service": None, "customer": "acme"}, 0, "original"),
    ]
    assert await close(tenant, local("10-01 02:30")) == []  # closing is idempotent

    everything = published[0]
    answer = await tenant.get(f"/v1/reports/{everything['report_id']}")
    frozen = answer.json()
    assert frozen["header"]["period"]["label"] == "2026-09"
    assert frozen["summary"]["overall"] == {"numerator": 2, "denominator": 3, "percent": 66.67}
    acme = (await tenant.get(f"/v1/reports/{published[1]['report_id']}")).json()
    assert acme["summary"]["overall"] == {"numerator": 1, "denominator": 2, "percent": 50.0}  # INC-3 is globex
    lineage = (await tenant.get(f"/v1/reports/{everything['report_id']}", lineage="true")).json()
    assert lineage["period"]["label"] == "2026-09"
    assert lineage["config_version"] == 1
    # Reproducible: the snapshot served is byte for byte what was hashed when it was frozen.
    assert hashlib.sha256(canonical_bytes(frozen)).hexdigest() == lineage["content_sha256"]
    first = await tenant.get(f"/v1/reports/{everything['report_id']}", format="csv")
    second = await tenant.get(f"/v1/reports/{everything['report_id']}", format="csv")
    assert first.content == second.content
    assert everything["links"] == {
        f: f"http://reporting.test/v1/reports/{everything['report_id']}?format={f}"
        for f in ("json", "csv", "html", "pdf")
    }
    html = await tenant.get(f"/v1/reports/{everything['report_id']}", format="html")
    assert "66.67 %" in html.text

    announced = await collect(
        reporting.stack.kafka_bootstrap, topics.REPORTS, lambda got: len(got) >= 2, tenant=tenant.name
    )
    assert sorted(e["data"]["report_id"] for e in announced) == sorted(str(p["report_id"]) for p in published)
    assert {e["type"] for e in announced} == {"report.published.v1"}
    assert announced[0]["data"]["period_start"] == "2026-08-31T16:00:00Z"
    # The live report of the same period names the snapshots published for it.
    live = (await tenant.get("/v1/reports/slr", **SEPTEMBER)).json()
    assert [p["report_id"] for p in live["header"]["published"]] == [everything["report_id"]]


async def test_a_late_event_never_changes_a_published_snapshot_but_produces_an_amendment(reporting: Reporting) -> None:
    tenant = await configured_tenant(reporting, "late")
    original = (await close(tenant, local("10-01 01:30")))[0]
    before = (await tenant.get(f"/v1/reports/{original['report_id']}")).json()

    late = clock_event(
        tenant.name,
        "INC-4",
        "stopped_breached",
        local("09-29 17:00"),
        metric="response",
        state="breached",
        elapsed=4000,
        priority="P2",
        started_at=local("09-29 09:00"),
        stopped_at=local("09-29 17:00"),
        breached_at=local("09-29 16:00"),
        customer="globex",
    )
    await reporting.publish([late])
    await reporting.wait_applied(tenant.name, 4)

    assert (await tenant.get(f"/v1/reports/{original['report_id']}")).json() == before
    live = (await tenant.get("/v1/reports/slr", **SEPTEMBER)).json()
    assert live["summary"]["overall"] == {"numerator": 2, "denominator": 4, "percent": 50.0}
    assert live["data_notes"]["late_events_after_close"] == 1
    assert any("waiting for the next amendment" in note for note in live["data_notes"]["notes"])

    amendments = await close(tenant, local("10-02 09:00"))
    # The customer "acme" scope did not change (INC-4 is globex's): only the whole-tenant report is amended.
    assert [(a["revision"], a["kind"], a["amends"], a["scope"]) for a in amendments] == [
        (1, "amendment", original["report_id"], {"service": None, "customer": None})
    ]
    amended = (await tenant.get(f"/v1/reports/{amendments[0]['report_id']}")).json()
    assert amended["amendment"]["amends"] == original["report_id"]
    assert amended["amendment"]["late_events"] == 1
    changes = {c["path"]: (c["before"], c["after"]) for c in amended["amendment"]["changes"]}
    assert changes["summary.overall.denominator"] == (3, 4)
    assert changes["summary.breached_cycles"] == (1, 2)
    assert (await tenant.get(f"/v1/reports/{original['report_id']}")).json() == before
    assert await close(tenant, local("10-02 10:00")) == []  # the late change is handled
    listed = (await tenant.get("/v1/reports")).json()["reports"]
    assert [(r["revision"], r["kind"]) for r in listed if r["scope"] == {"service": None, "customer": None}] == [
        (0, "original"),
        (1, "amendment"),
    ]


async def test_two_replicas_closing_at_once_publish_each_snapshot_once(reporting: Reporting) -> None:
    tenant = await configured_tenant(reporting, "replicas")
    closers = [
        PeriodCloser(units(reporting), reporting.clock, interval_seconds=1, amendment_quiet_seconds=0, base_url="")
        for _ in range(3)
    ]
    results = await asyncio.gather(*(c.close_due(local("10-05 12:00"), tenant.name) for c in closers))
    assert sorted(len(r) for r in results) == [0, 0, 2]
    async with reporting.sessions() as session:
        snapshots = (
            await session.execute(
                sa.select(sa.func.count())
                .select_from(tables.report_snapshots)
                .where(tables.report_snapshots.c.tenant_id == tenant.name)
            )
        ).scalar_one()
        outbox = (
            await session.execute(
                sa.select(sa.func.count())
                .select_from(tables.outbox)
                .where(tables.outbox.c.key == f"{tenant.name}/reports")
            )
        ).scalar_one()
    assert (snapshots, outbox) == (2, 2)


async def test_the_background_loop_closes_periods_by_its_injected_clock(reporting: Reporting) -> None:
    tenant = await configured_tenant(reporting, "loop")
    closer = PeriodCloser(
        units(reporting), lambda: local("10-03 08:00"), interval_seconds=0.1, amendment_quiet_seconds=0, base_url=""
    )
    task = asyncio.create_task(closer.run())
    try:
        for _ in range(300):
            async with reporting.sessions() as session:
                closed = (
                    (
                        await session.execute(
                            sa.select(tables.period_closes.c.label).where(
                                tables.period_closes.c.tenant_id == tenant.name
                            )
                        )
                    )
                    .scalars()
                    .all()
                )
            if closed:
                break
            await asyncio.sleep(0.1)
    finally:
        await closer.stop()
        await task
    assert closed == ["2026-09"]


async def test_a_tenant_whose_close_fails_is_counted_and_skipped_and_an_ancient_first_event_is_clamped(
    reporting: Reporting,
) -> None:
    broken = await configured_tenant(reporting, "a0-broken")  # sorts first: the pass meets it before the others
    ancient = await configured_tenant(reporting, "a1-ancient")
    good = await configured_tenant(reporting, "a2-good")
    async with reporting.sessions() as session, session.begin():
        # Stored data the service cannot use: a config no release accepts, a first event timed 0001-01-01.
        await session.execute(
            sa.update(tables.reporting_config)
            .where(tables.reporting_config.c.tenant_id == broken.name)
            .values(config={"period": "fortnightly"})
        )
        await session.execute(
            sa.update(tables.tenants_seen)
            .where(tables.tenants_seen.c.tenant_id == ancient.name)
            .values(first_event_time=datetime(1, 1, 1, tzinfo=UTC))
        )
    failures = REGISTRY.get_sample_value("slm_background_failures_total", {"task": "period close"}) or 0.0
    closer = PeriodCloser(units(reporting), reporting.clock, interval_seconds=1, amendment_quiet_seconds=0, base_url="")
    try:
        published = await closer.close_due(local("10-01 01:30"))
    finally:  # repaired, so later passes (and later runs on this database) do not meet it again
        async with reporting.sessions() as session, session.begin():
            await session.execute(
                sa.update(tables.reporting_config)
                .where(tables.reporting_config.c.tenant_id == broken.name)
                .values(config=CONFIG)
            )

    closed = {(p.tenant, p.label) for p in published}
    assert (good.name, "2026-09") in closed
    # Clamped to the last MAX_BACKFILL_PERIODS months instead of overflowing from year 1.
    assert sorted(label for tenant, label in closed if tenant == ancient.name)[-1] == "2026-09"
    assert len({label for tenant, label in closed if tenant == ancient.name}) == MAX_BACKFILL_PERIODS
    assert not any(tenant == broken.name for tenant, _ in closed)
    assert REGISTRY.get_sample_value("slm_background_failures_total", {"task": "period close"}) == failures + 1


async def test_the_close_freezes_the_review_and_a_late_amendment_is_shown_beside_it_never_merged(
    reporting: Reporting,
) -> None:
    tenant = await configured_tenant(reporting, "freeze")
    await close(tenant, local("10-01 01:30"))
    review = (await tenant.get("/v1/reviews/2026-09")).json()
    frozen = {k: v for k, v in review.items() if k not in ("frozen", "after_close")}
    # The pack as frozen hashes to what the close stored, and its SLA figures are the three September cycles.
    assert review["frozen"]["content_sha256"] == hashlib.sha256(canonical_bytes(frozen)).hexdigest()
    assert review["frozen"]["frozen_at"] == local("11-20 12:00").astimezone(UTC).isoformat()
    assert [(p["attainment"]["numerator"], p["attainment"]["denominator"]) for p in review["sla"][0]["trend"]][-1] == (
        2,
        3,
    )
    assert review["after_close"] == {"report_amendments": [], "pending_late_events": 0, "complaint_handling": []}
    acme = (await tenant.get("/v1/reviews/2026-09", customer="acme")).json()
    assert acme["frozen"]["content_sha256"] != review["frozen"]["content_sha256"]  # frozen per published customer

    late = clock_event(
        tenant.name,
        "INC-4",
        "stopped_breached",
        local("09-29 17:00"),
        metric="response",
        state="breached",
        elapsed=4000,
        priority="P2",
        started_at=local("09-29 09:00"),
        stopped_at=local("09-29 17:00"),
        breached_at=local("09-29 16:00"),
        customer="globex",
    )
    await reporting.publish([late])
    await reporting.wait_applied(tenant.name, 4)
    waiting = (await tenant.get("/v1/reviews/2026-09")).json()
    assert waiting["after_close"]["pending_late_events"] == 1
    [amendment] = await close(tenant, local("10-02 09:00"))
    after = (await tenant.get("/v1/reviews/2026-09")).json()
    # Served as frozen: 2 of 3, not the 2 of 4 the late breach makes; the amendment is listed beside it.
    assert {k: v for k, v in after.items() if k not in ("frozen", "after_close")} == frozen
    [listed] = after["after_close"]["report_amendments"]
    assert (listed["report_id"], listed["revision"], listed["late_events"]) == (amendment["report_id"], 1, 1)
    assert {c["path"]: (c["before"], c["after"]) for c in listed["changes"]}["summary.overall.denominator"] == (3, 4)
    assert after["after_close"]["pending_late_events"] == 0
    html = (await tenant.get("/v1/reviews/2026-09", format="html")).text
    assert 'id="frozen"' in html
    assert 'id="after-close"' in html
    assert str(amendment["report_id"]) in html

    # Approval approves the frozen pack: its hash is the close's.
    tenant.reporting.clock.pinned = local("11-21 10:00")
    approved = await reporting.client.post(
        "/v1/reviews/2026-09:approve", headers=tenant.headers, json={"approved_by": "Wang Fang"}
    )
    assert approved.status_code == 201, approved.text
    assert approved.json()["content_sha256"] == review["frozen"]["content_sha256"]


async def test_a_completed_improvement_is_measured_again_when_the_first_whole_period_after_it_closes(
    reporting: Reporting,
) -> None:
    """SLA response attainment: September 1 met of 2 (INC-1 met, INC-2 breached) = 50 %. Completed on 20 October,
    when October so far held one met response (INC-5): 100 %, provisional. October's close leaves it (October holds
    the completion: INC-6's breach came after it); November's close measures November: 3 met of 4 = 75 %."""
    tenant = await configured_tenant(reporting, "after")

    def response(ticket: str, day: str, met: bool) -> CloudEvent:
        at, started = local(f"{day} 10:00"), local(f"{day} 09:00")
        if met:
            return clock_event(
                tenant.name,
                ticket,
                "met",
                at,
                metric="response",
                state="met",
                elapsed=1800,
                priority="P2",
                started_at=started,
                stopped_at=at,
            )
        return clock_event(
            tenant.name,
            ticket,
            "stopped_breached",
            at,
            metric="response",
            state="breached",
            elapsed=5400,
            priority="P2",
            started_at=started,
            stopped_at=at,
            breached_at=local(f"{day} 09:59"),
        )

    later = [
        response("INC-5", "10-10", True),
        response("INC-6", "10-25", False),
        *(response(f"INC-{n}", f"11-{n:02d}", True) for n in (7, 8, 9)),
        response("INC-10", "11-12", False),
    ]
    await reporting.publish(later)
    await reporting.wait_applied(tenant.name, 3 + len(later))
    client, headers, clock = reporting.client, tenant.headers, reporting.clock
    clock.pinned = local("10-02 09:00")
    created = await client.post(
        "/v1/improvements",
        headers=headers,
        json={
            "title": "Answer every P2 within the hour",
            "trigger": {"kind": "breached_clock", "ref": "INC-2"},
            "kpi": {"kpi": "sla_attainment", "agreement": "SLA", "metric": "response"},
            "target_value": 90,
            "baseline_period": SEPTEMBER,
        },
    )
    assert created.status_code == 201, created.text
    path = f"/v1/improvements/{created.json()['improvement_id']}"
    assert created.json()["baseline_value"] == 50.0
    clock.pinned = local("10-20 12:00")
    done = (await client.patch(path, headers=headers, json={"status": "done"})).json()
    assert (done["after_value"], done["after_period"]["label"], done["after_period"]["measured"]) == (
        100.0,
        "2026-10",
        "at completion",
    )

    await close(tenant, local("11-01 01:30"))  # September and October
    october = (await tenant.get(path)).json()
    assert (october["after_value"], october["after_period"]["measured"]) == (100.0, "at completion")
    clock.pinned = local("12-05 12:00")  # the service's "now", after November's close is due
    november_close = await client.post(
        "/v1/periods:close", json={"at": local("12-01 01:30").isoformat()}, headers=headers
    )
    assert november_close.status_code == 200, november_close.text
    november = (await tenant.get(path)).json()
    assert (
        november["baseline_value"],
        november["after_value"],
        november["after_period"]["label"],
        november["after_period"]["measured"],
    ) == (50.0, 75.0, "2026-11", "at close")
    again = await client.post("/v1/periods:close", json={"at": local("12-01 02:30").isoformat()}, headers=headers)
    assert again.status_code == 200, again.text
    assert (await tenant.get(path)).json()["after_period"] == november["after_period"]  # measured once

    review = (await tenant.get("/v1/reviews/2026-11")).json()  # frozen by November's close, after the measure
    [item] = [i for i in review["improvements"] if i["improvement_id"] == november["improvement_id"]]
    assert (item["movement"], item["baseline_value"], item["after_value"], item["after_period"]["label"]) == (
        "measured",
        50.0,
        75.0,
        "2026-11",
    )
    page = (await tenant.get("/v1/reviews/2026-11", format="html", lang="zh")).text
    clock.pinned = local("11-20 12:00")  # as the other tests of the module leave it
    assert "已复测" in page
