"""Notifications beyond a clock's own transitions, on the real stack: a report's publication (and the review's
distribution record of it), a correction after a recalculation, and events that arrive late.

Same setting as test_notifications.py: reporting in-process with its clock pinned, events through Kafka,
real receivers on loopback checking each payload's documented shape.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa

from reporting import tables
from slm_shared.events import CloudEvent, RetractedTransition
from tests.integration.reporting.conftest import Reporting, Tenant
from tests.integration.reporting.events import clock_event, local
from tests.integration.reporting.receivers import WEBHOOK_SECRET, Receivers, running_receivers
from tests.integration.reporting.test_notifications import (
    BREACH,
    _count,
    apply,
    breach,
    delivery_log,
    eventually,
    passes,
)
from tests.integration.reporting.test_period_close import close, configured_tenant

pytestmark = pytest.mark.integration


@pytest.fixture
async def receivers(reporting: Reporting) -> AsyncIterator[Receivers]:
    async with running_receivers() as running:
        yield running
    reporting.clock.pinned = None


def report_policy(receivers: Receivers) -> str:
    return f"""
channels:
  - {{name: desk, type: webhook, url: "{receivers.base_url}/hook", secret: {WEBHOOK_SECRET}}}
rules:
  - {{id: every-report, triggers: [report_published], channel: desk, recipients: [sla-manager]}}
  - {{id: acme-reports, triggers: [report_published], match: {{customer: acme}}, channel: desk,
     recipients: [acme-service-owner, acme-cio]}}
"""


async def test_a_published_report_notifies_its_rules_and_the_review_lists_who_received_it(
    reporting: Reporting, receivers: Receivers
) -> None:
    """September closes with two snapshots (everything, and acme's: test_period_close.CONFIG). `every-report`
    matches both, `acme-reports` only acme's: three notifications, each once, however often the close runs."""
    tenant = await configured_tenant(reporting, "ntf-pub")
    await apply(tenant, report_policy(receivers))
    published = await close(tenant, local("10-01 01:30"))
    assert await close(tenant, local("10-01 02:30")) == []  # closing again publishes and plans nothing
    everything, acme = (str(p["report_id"]) for p in published)
    await eventually(partial(_count, receivers, "/hook", 3), "the three publications were delivered")
    await passes(reporting)

    hooks = receivers.at("/hook")
    assert [h.problems for h in hooks] == [[], [], []]
    sent = sorted(
        (h.body["data"]["report_id"], h.body["data"]["rule"], tuple(h.body["data"]["recipients"])) for h in hooks
    )
    assert sent == sorted(
        [
            (everything, "every-report", ("sla-manager",)),
            (acme, "every-report", ("sla-manager",)),
            (acme, "acme-reports", ("acme-service-owner", "acme-cio")),
        ]
    )
    acme_hook = next(h for h in hooks if h.body["data"]["rule"] == "acme-reports")
    data = acme_hook.body["data"]
    assert (data["trigger"], data["label"], data["revision"], data["customer"]) == (
        "report.published",
        "2026-09",
        0,
        "acme",
    )
    assert data["title"] == "Service level report published: 2026-09 (revision 0)"
    assert data["link"] == f"http://reporting.test/v1/reports/{acme}?format=html"
    assert data["ack_link"] is None  # a publication is a fact: nothing to escalate, nothing to acknowledge

    # The notification rows were written by the transaction that froze the snapshot: the same instant.
    async with reporting.sessions() as session:
        n, s = tables.notifications, tables.report_snapshots
        pairs = (
            await session.execute(
                sa.select(n.c.created_at, s.c.created_at)
                .join(
                    s,
                    sa.and_(
                        s.c.tenant_id == n.c.tenant_id, s.c.report_id == sa.func.split_part(n.c.ladder_key, "/", 2)
                    ),
                )
                .where(n.c.tenant_id == tenant.name)
            )
        ).all()
    assert len(pairs) == 3
    assert all(planned == frozen for planned, frozen in pairs)

    review = (await tenant.get("/v1/reviews/2026-09")).json()
    [distributed] = review["distribution"]
    assert (distributed["report_id"], distributed["revision"]) == (everything, 0)
    assert [
        (d["rule_id"], d["channel"], d["recipients"], d["status"], d["delivered_at"], d["attempts"])
        for d in distributed["deliveries"]
    ] == [("every-report", "desk", ["sla-manager"], "sent", "2026-11-20T04:00:00Z", 1)]  # 12:00 in Shanghai
    review_acme = (await tenant.get("/v1/reviews/2026-09", customer="acme")).json()
    [distributed_acme] = review_acme["distribution"]
    assert [(d["rule_id"], d["recipients"], d["status"]) for d in distributed_acme["deliveries"]] == [
        ("acme-reports", ["acme-service-owner", "acme-cio"], "sent"),
        ("every-report", ["sla-manager"], "sent"),
    ]
    page = await tenant.get("/v1/reviews/2026-09", customer="acme", format="html", lang="zh")
    assert "发送给 acme-service-owner, acme-cio 经由 desk (acme-reports): sent" in page.text


def correcting_policy(receivers: Receivers) -> str:
    return f"""
channels:
  - {{name: desk, type: webhook, url: "{receivers.base_url}/hook", secret: {WEBHOOK_SECRET}}}
  - {{name: quiet, type: webhook, url: "{receivers.base_url}/hook/other", secret: {WEBHOOK_SECRET}}}
rules:
  - {{id: corrected, triggers: [breached], channel: desk, recipients: [oncall], on_recalculation: correct}}
  - {{id: default, triggers: [breached], channel: quiet, recipients: [oncall]}}
"""


def recalculated(
    tenant: Tenant,
    ticket: str,
    at: datetime,
    sequence: int,
    *,
    event_id: str | None = None,
    breached_at: datetime | None = None,
    due_at: datetime = BREACH + timedelta(minutes=30),
    retracts: RetractedTransition | None = None,
) -> CloudEvent:
    """The engine, on a late event showing a 30-minute pause before the breach: the clock runs on, due half an
    hour later, not breached (elapsed 4 h - 30 min at the pause's end, then 20 minutes more)."""
    return clock_event(
        tenant.name,
        ticket,
        "recalculated",
        at,
        metric="resolution",
        state="running",
        elapsed=13800,
        priority="P1",
        started_at=BREACH - timedelta(hours=4),
        breached_at=breached_at,
        due_at=due_at,
        calendar="24x7",
        target=14400,
        sequence=sequence,
        event_id=event_id,
        retracts=retracts,
    )


async def test_a_recalculation_that_retracts_a_sent_breach_sends_one_correction_and_only_where_asked(
    reporting: Reporting, receivers: Receivers
) -> None:
    tenant = await reporting.tenant("ntf-fix")
    await apply(tenant, correcting_policy(receivers))
    reporting.clock.pinned = BREACH
    await reporting.publish([breach(tenant, "INC-C1", due_at=BREACH, sequence=2)])
    await eventually(lambda: _both(receivers, 1, 1), "the breach went to both rules")

    at = BREACH + timedelta(minutes=20)
    reporting.clock.pinned = at
    retraction = recalculated(
        tenant,
        "INC-C1",
        at,
        3,
        event_id="INC-C1:gold:resolution:1:3:recalculated",
        retracts=RetractedTransition(transition="breached", at=BREACH),
    )
    republished = recalculated(tenant, "INC-C1", at, 3, retracts=RetractedTransition(transition="breached", at=BREACH))
    # The same recalculation redelivered, then published again under another id: one correction.
    await reporting.publish([retraction, retraction, republished])
    await reporting.wait_applied(tenant.name, 3)
    await eventually(lambda: _both(receivers, 2, 1), "the correction went out")
    # A later recalculation that leaves what the correction said as it was: nothing more.
    later = BREACH + timedelta(minutes=25)
    reporting.clock.pinned = later
    await reporting.publish([recalculated(tenant, "INC-C1", later, 4)])
    await reporting.wait_applied(tenant.name, 4)
    await passes(reporting)

    assert (len(receivers.at("/hook")), len(receivers.at("/hook/other"))) == (2, 1)
    correction = receivers.at("/hook")[1]
    assert correction.problems == []
    data = correction.body["data"]
    assert (data["trigger"], data["rule"], data["title"]) == (
        "correction",
        "corrected",
        "SLA correction: INC-C1 resolution",
    )
    assert data["correction"] == {
        "changed": ["retracted", "breached", "due_at"],
        "corrects": "breached",
        "before": {"state": "running", "breached": True, "due_at": "2026-12-08T03:00:00Z"},
        "after": {"state": "running", "breached": False, "due_at": "2026-12-08T03:30:00Z"},
    }
    # Figures for the sending instant: 13,800 s at the recalculation, the clock running 24x7.
    assert (data["elapsed_seconds_now"], data["remaining_seconds_now"]) == (13800, 600)
    log = await delivery_log(tenant, ticket="INC-C1")
    assert sorted((row["trigger"], row["rule_id"], row["status"]) for row in log) == [
        ("breached", "corrected", "sent"),
        ("breached", "default", "sent"),
        ("correction", "corrected", "sent"),
    ]


async def test_a_recalculation_that_repeats_a_correction_still_on_its_way_plans_no_second_one(
    reporting: Reporting, receivers: Receivers
) -> None:
    """Two recalculations in quick succession, the second saying what the first did: the first one's correction
    is still being delivered (its receiver is slow) when the second is applied. What the rule is about to tell
    counts as told: one correction, not two. (The planner compared with sent rows only, and sent a repeat.)"""
    tenant = await reporting.tenant("ntf-fix")
    await apply(tenant, correcting_policy(receivers))
    reporting.clock.pinned = BREACH
    await reporting.publish([breach(tenant, "INC-C2", due_at=BREACH, sequence=2)])
    await eventually(lambda: _both(receivers, 1, 1), "the breach went to both rules")

    receivers.path_delays["/hook"] = 3.0  # the correction stays pending meanwhile
    at = BREACH + timedelta(minutes=20)
    reporting.clock.pinned = at
    retracts = RetractedTransition(transition="breached", at=BREACH)
    await reporting.publish([recalculated(tenant, "INC-C2", at, 3, retracts=retracts)])
    await reporting.wait_applied(tenant.name, 2)
    later = BREACH + timedelta(minutes=25)
    reporting.clock.pinned = later
    await reporting.publish([recalculated(tenant, "INC-C2", later, 4)])
    await reporting.wait_applied(tenant.name, 3)
    await eventually(lambda: _both(receivers, 2, 1), "the correction went out")
    await eventually(partial(_settled, tenant, "INC-C2"), "every notification of the ticket settled")
    await passes(reporting)

    assert (len(receivers.at("/hook")), len(receivers.at("/hook/other"))) == (2, 1)
    log = await delivery_log(tenant, ticket="INC-C2")
    assert sorted((row["trigger"], row["rule_id"], row["status"]) for row in log) == [
        ("breached", "corrected", "sent"),
        ("breached", "default", "sent"),
        ("correction", "corrected", "sent"),
    ]


async def _settled(tenant: Tenant, ticket: str) -> bool:
    return all(row["status"] not in ("pending", "retrying") for row in await delivery_log(tenant, ticket=ticket))


async def _both(receivers: Receivers, hook: int, quiet: int) -> bool:
    return len(receivers.at("/hook")) >= hook and len(receivers.at("/hook/other")) >= quiet


async def test_templates_are_stored_with_the_policy_and_an_unknown_name_is_refused_at_the_door(
    reporting: Reporting, receivers: Receivers
) -> None:
    tenant = await reporting.tenant("ntf-tpl")
    refused = await reporting.client.put(
        "/v1/notification-policies",
        headers=tenant.headers,
        json={
            "channels": [{"name": "desk", "type": "webhook", "url": f"{receivers.base_url}/hook"}],
            "rules": [
                {
                    "id": "r",
                    "triggers": ["breached"],
                    "channel": "desk",
                    "templates": {"en": {"title": "$ticket_id for $assignee"}},
                }
            ],
        },
    )
    assert refused.status_code == 422, refused.text
    assert "unknown template names ['assignee']" in refused.text
    assert (await tenant.get("/v1/notification-policies")).status_code == 404  # nothing was stored

    applied = await apply(
        tenant,
        f"""
language: en
templates:
  en: {{title: "[$priority] $ticket_id breached ($customer)"}}
  zh-Hans: {{title: "【$priority】$ticket_id 已违约"}}
channels:
  - {{name: desk, type: webhook, url: "{receivers.base_url}/hook", secret: {WEBHOOK_SECRET}}}
rules:
  - {{id: english, triggers: [breached], channel: desk}}
  - id: chinese
    triggers: [breached]
    channel: desk
    language: zh-Hans
    templates: {{zh-Hans: {{text: "请值班处理 $ticket_id，剩余 $remaining"}}}}
""",
    )
    assert applied["version"] == 1
    assert applied["policy"]["templates"]["zh-CN"] == {"title": "【$priority】$ticket_id 已违约"}
    reporting.clock.pinned = BREACH
    await reporting.publish([breach(tenant, "INC-T1")])
    await eventually(partial(_count, receivers, "/hook", 2), "both rules' messages went out")
    by_rule = {r.body["data"]["rule"]: r.body["data"] for r in receivers.at("/hook")}
    assert by_rule["english"]["title"] == "[P1] INC-T1 breached (acme)"
    assert by_rule["chinese"]["title"] == "【P1】INC-T1 已违约"  # the tenant's title, the rule's text
    assert (
        by_rule["english"]["link"]
        == by_rule["chinese"]["link"]
        == "http://sla-engine.test/v1/tickets/INC-T1/clocks?at=2026-12-08T03:00:00%2B00:00"
    )


def late_policy(receivers: Receivers) -> str:
    return f"""
channels:
  - {{name: desk, type: webhook, url: "{receivers.base_url}/hook", secret: {WEBHOOK_SECRET}}}
rules:
  - {{id: p1, triggers: [breached, {{event: warning, threshold: 75}}], channel: desk, recipients: [oncall]}}
"""


def p1(tenant: Tenant, ticket: str, transition: str, at: datetime, sequence: int, **fields: Any) -> CloudEvent:
    figures: dict[str, Any] = {
        "metric": "resolution",
        "state": "running",
        "priority": "P1",
        "calendar": "24x7",
        "target": 14400,
        "started_at": BREACH - timedelta(hours=4),
    } | fields
    return clock_event(tenant.name, ticket, transition, at, sequence=sequence, **figures)


async def test_a_breach_missed_while_reporting_was_down_is_told_late_and_old_or_overtaken_news_is_not(
    reporting: Reporting, receivers: Receivers
) -> None:
    """Reporting comes back two hours after the breaches (its consumer reads the backlog then):
    INC-D1 breached and still runs breached: told, 2 h 00 m 30 s late (the 30 s the backlog gets to settle);
    INC-D2 breached and was answered an hour later, both in the backlog: not told;
    INC-D3 crossed 75 % an hour before its breach: the breach is told, the warning superseded by it;
    INC-D4's met arrives before its breach (a replay, or a backlog out of order): the breach is overtaken.
    Then a breach received 26 hours after it happened: history, suppressed as stale."""
    tenant = await reporting.tenant("ntf-late")
    await apply(tenant, late_policy(receivers))
    back = BREACH + timedelta(hours=2)
    reporting.clock.pinned = back
    met = BREACH + timedelta(hours=1)
    await reporting.publish(
        [
            p1(tenant, "INC-D1", "breached", BREACH, 2, elapsed=14400, breached_at=BREACH),
            p1(tenant, "INC-D2", "breached", BREACH, 2, elapsed=14400, breached_at=BREACH),
            p1(tenant, "INC-D2", "met", met, 3, state="met", elapsed=18000, breached_at=BREACH, stopped_at=met),
            p1(tenant, "INC-D3", "warning", BREACH - timedelta(hours=1), 2, elapsed=10800, threshold=75),
            p1(tenant, "INC-D3", "breached", BREACH, 3, elapsed=14400, breached_at=BREACH),
            p1(tenant, "INC-D4", "met", met, 3, state="met", elapsed=18000, breached_at=BREACH, stopped_at=met),
            p1(tenant, "INC-D4", "breached", BREACH, 2, elapsed=14400, breached_at=BREACH),
        ]
    )
    await reporting.wait_applied(tenant.name, 7)
    await passes(reporting)
    assert receivers.at("/hook") == []  # nothing before the backlog has settled
    reporting.clock.pinned = back + timedelta(seconds=30)
    await eventually(partial(_count, receivers, "/hook", 2), "the two breaches that still hold were told")
    await passes(reporting)

    told = {r.body["data"]["ticket_id"]: r.body["data"] for r in receivers.at("/hook")}
    assert sorted(told) == ["INC-D1", "INC-D3"]
    assert all(r.problems == [] for r in receivers.at("/hook"))
    d1 = told["INC-D1"]
    assert (d1["trigger"], d1["late_seconds"]) == ("breached", 7230)
    # Figures for the sending instant: 4 h at the breach, 2 h 00 m 30 s since on a 24x7 clock.
    assert (d1["elapsed_seconds_now"], d1["remaining_seconds_now"]) == (14400 + 7230, -7230)
    log = {(row["ticket_id"], row["trigger"]): row for row in await delivery_log(tenant)}
    assert (log[("INC-D1", "breached")]["due_at"], log[("INC-D1", "breached")]["sent_at"]) == (
        (back + timedelta(seconds=30)).isoformat(),
        (back + timedelta(seconds=30)).isoformat(),
    )
    assert log[("INC-D2", "breached")]["status"] == "suppressed"
    # Applied in one batch the met had overtaken it already; in two, the met was applied before it was due.
    assert log[("INC-D2", "breached")]["reason"] in (
        "superseded: its cycle had moved on when it arrived",
        "the clock is met",
    )
    assert log[("INC-D3", "warning:75")]["status"] == "suppressed"
    assert log[("INC-D3", "warning:75")]["reason"] in (
        "superseded: its cycle had moved on when it arrived",
        "superseded by the cycle's breach",
    )
    assert (log[("INC-D4", "breached")]["status"], log[("INC-D4", "breached")]["reason"]) == (
        "suppressed",
        "superseded: its cycle had moved on when it arrived",
    )

    reporting.clock.pinned = BREACH + timedelta(hours=26)
    await reporting.publish([p1(tenant, "INC-D5", "breached", BREACH, 2, elapsed=14400, breached_at=BREACH)])
    await reporting.wait_applied(tenant.name, 8)
    await passes(reporting)
    [d5] = await delivery_log(tenant, ticket="INC-D5")
    assert (d5["status"], d5["reason"]) == ("suppressed", "stale: received 1 day, 2:00:00 after the event")
    assert len(receivers.at("/hook")) == 2
