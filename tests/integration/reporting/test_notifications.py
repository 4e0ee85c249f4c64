"""Notifications on the real stack: clock transitions published to Kafka, reporting in-process with its clock
pinned, the delivery loop sending to real receivers on loopback (receivers.py) that check each vendor's shape.

Instants are pinned on the app's clock, so "at the breach instant" and "at the next working minute" are
statements about the app's time, not about how fast this machine is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from reporting import tables
from tests.integration.reporting.conftest import Reporting, Tenant
from tests.integration.reporting.events import SHANGHAI, clock_event, ticket_event
from tests.integration.reporting.receivers import WEBHOOK_SECRET, Receivers, running_receivers

pytestmark = pytest.mark.integration

BREACH = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)  # a Tuesday


@pytest.fixture
async def receivers(reporting: Reporting) -> AsyncIterator[Receivers]:
    async with running_receivers() as running:
        yield running
    reporting.clock.pinned = None


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {what}")


async def passes(reporting: Reporting, count: int = 5) -> None:
    """Let the delivery loop run a few more passes (0.2 s apart), so anything it would still send is sent."""
    await asyncio.sleep(0.2 * count)


async def apply(tenant: Tenant, policy: str) -> dict[str, Any]:
    answer = await tenant.reporting.client.put(
        "/v1/notification-policies",
        content=policy.encode(),
        headers={**tenant.headers, "content-type": "application/yaml"},
    )
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


async def delivery_log(tenant: Tenant, **params: str) -> list[dict[str, Any]]:
    answer = await tenant.get("/v1/notifications", **params)
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, Any]] = answer.json()["notifications"]
    return sorted(rows, key=lambda row: (row["trigger"], row["level"]))


def breach(tenant: Tenant, ticket: str, at: datetime = BREACH, **overrides: Any) -> Any:
    fields: dict[str, Any] = {
        "metric": "resolution",
        "state": "running",
        "elapsed": 14400,
        "priority": "P1",
        "started_at": at - timedelta(hours=4),
        "breached_at": at,
        "calendar": "24x7",
        "target": 14400,
    } | overrides
    return clock_event(tenant.name, ticket, "breached", at, **fields)


def webhook_policy(receivers: Receivers, extra: str = "") -> str:
    return f"""
channels:
  - {{name: desk, type: webhook, url: "{receivers.base_url}/hook", secret: {WEBHOOK_SECRET}}}
rules:
  - id: p1-breaches
    triggers: [breached]
    match: {{priority: P1}}
    channel: desk
    recipients: [oncall]
{extra}"""


async def test_a_breach_is_delivered_once_at_the_breach_instant_with_no_further_event(
    reporting: Reporting, receivers: Receivers
) -> None:
    tenant = await reporting.tenant("ntf")
    await apply(tenant, webhook_policy(receivers))
    reporting.clock.pinned = BREACH
    await reporting.publish([breach(tenant, "INC-B1")])
    await eventually(lambda: _count(receivers, "/hook", 1), "the breach was delivered")
    await passes(reporting)

    [received] = receivers.at("/hook")
    assert received.problems == []
    data = received.body["data"]
    assert (data["ticket_id"], data["trigger"], data["level"], data["recipients"]) == (
        "INC-B1",
        "breached",
        0,
        ["oncall"],
    )
    assert data["link"] == "http://sla-engine.test/v1/tickets/INC-B1/clocks?at=2026-12-08T03:00:00%2B00:00"
    assert (data["elapsed_seconds_now"], data["remaining_seconds_now"], data["values_exact"]) == (14400, 0, True)
    assert received.headers["webhook-id"] == data["notification_id"]
    [row] = await delivery_log(tenant, ticket="INC-B1")
    assert (row["status"], row["attempts"], row["due_at"], row["sent_at"]) == (
        "sent",
        1,
        BREACH.isoformat(),
        BREACH.isoformat(),
    )


async def test_a_p4_warning_due_at_two_at_night_goes_out_at_the_next_working_minute(
    reporting: Reporting, receivers: Receivers
) -> None:
    tenant = await reporting.tenant("ntf")
    await apply(tenant, warning_policy(receivers))
    night = datetime(2026, 12, 8, 2, 0, tzinfo=SHANGHAI)
    reporting.clock.pinned = night
    await reporting.publish([warning(tenant, "INC-W1", night)])
    await eventually(lambda: _logged(tenant, "INC-W1", 1), "the warning was planned")
    await passes(reporting)
    [row] = await delivery_log(tenant, ticket="INC-W1")
    assert (row["status"], row["due_at"]) == ("pending", datetime(2026, 12, 8, 1, 0, tzinfo=UTC).isoformat())
    assert receivers.at("/hook") == []

    reporting.clock.pinned = datetime(2026, 12, 8, 9, 0, tzinfo=SHANGHAI)
    await eventually(lambda: _count(receivers, "/hook", 1), "the warning went out at 09:00")
    [row] = await delivery_log(tenant, ticket="INC-W1")
    assert (row["status"], row["sent_at"]) == ("sent", datetime(2026, 12, 8, 1, 0, tzinfo=UTC).isoformat())
    assert receivers.at("/hook")[0].problems == []


async def test_a_warning_whose_ticket_was_answered_meanwhile_is_suppressed(
    reporting: Reporting, receivers: Receivers
) -> None:
    tenant = await reporting.tenant("ntf")
    await apply(tenant, warning_policy(receivers))
    night = datetime(2026, 12, 8, 2, 0, tzinfo=SHANGHAI)
    reporting.clock.pinned = night
    answered = night + timedelta(hours=1)
    await reporting.publish([warning(tenant, "INC-W2", night)])
    await eventually(lambda: _logged(tenant, "INC-W2", 1), "the warning was planned")
    await reporting.publish(
        [
            clock_event(
                tenant.name,
                "INC-W2",
                "met",
                answered,
                metric="response",
                state="met",
                elapsed=70000,
                priority="P4",
                started_at=night - timedelta(days=1),
                stopped_at=answered,
            )
        ]
    )
    await reporting.wait_applied(tenant.name, 2)

    reporting.clock.pinned = datetime(2026, 12, 8, 9, 0, tzinfo=SHANGHAI)
    await eventually(lambda: _status(tenant, "INC-W2", "suppressed"), "the warning was suppressed")
    await passes(reporting)
    [row] = await delivery_log(tenant, ticket="INC-W2")
    assert (row["reason"], row["sent_at"]) == ("the clock is met", None)
    assert receivers.at("/hook") == []


async def test_a_ladder_escalates_twice_and_stops_on_acknowledgement(
    reporting: Reporting, receivers: Receivers
) -> None:
    tenant = await reporting.tenant("ntf")
    await apply(
        tenant,
        webhook_policy(
            receivers,
            """    escalation:
      levels: [{after: 0m}, {after: 10m, recipients: [duty-manager]}]
      repeat_every: 10m
""",
        ),
    )
    reporting.clock.pinned = BREACH
    await reporting.publish([breach(tenant, "INC-L1")])
    await eventually(lambda: _count(receivers, "/hook", 1), "level 0 went out")
    for minutes, sent in ((10, 2), (20, 3)):
        reporting.clock.pinned = BREACH + timedelta(minutes=minutes)
        await eventually(partial(_count, receivers, "/hook", sent), f"level {sent - 1} went out")
    levels = [(r.body["data"]["level"], r.body["data"]["recipients"]) for r in receivers.at("/hook")]
    assert levels == [(0, ["oncall"]), (1, ["duty-manager"]), (2, ["duty-manager"])]

    third = next(row for row in await delivery_log(tenant, ticket="INC-L1") if row["level"] == 2)
    ack = await reporting.client.post(f"/v1/notifications/{third['id']}:ack", headers=tenant.headers)
    assert ack.status_code == 200, ack.text
    reporting.clock.pinned = BREACH + timedelta(hours=2)
    await passes(reporting)
    assert len(receivers.at("/hook")) == 3
    log = await delivery_log(tenant, ticket="INC-L1")
    assert [(row["level"], row["status"], row["reason"]) for row in log] == [
        (0, "sent", None),
        (1, "sent", None),
        (2, "sent", None),
        (3, "suppressed", "acknowledged"),
    ]
    assert ack.json()["suppressed"] == [log[3]["id"]]


async def test_a_redelivered_event_a_replay_and_a_recalculation_send_nothing_more(
    reporting: Reporting, receivers: Receivers
) -> None:
    tenant = await reporting.tenant("ntf")
    await apply(tenant, webhook_policy(receivers))
    reporting.clock.pinned = BREACH
    first = breach(tenant, "INC-R1")
    await reporting.publish([first])
    await eventually(lambda: _count(receivers, "/hook", 1), "the breach was delivered")
    replayed = breach(tenant, "INC-R1")  # the engine publishing the same transition again, under a new id
    recalculated = clock_event(
        tenant.name,
        "INC-R1",
        "recalculated",
        BREACH + timedelta(minutes=1),
        metric="resolution",
        state="running",
        elapsed=14460,
        priority="P1",
        started_at=BREACH - timedelta(hours=4),
        breached_at=BREACH,
        calendar="24x7",
        target=14400,
    )
    await reporting.publish([first, replayed, recalculated, first])
    await reporting.wait_applied(tenant.name, 3)
    await passes(reporting)
    assert len(receivers.at("/hook")) == 1
    assert [row["status"] for row in await delivery_log(tenant)] == ["sent"]


async def test_each_channel_receives_its_vendor_s_documented_shape(reporting: Reporting, receivers: Receivers) -> None:
    tenant = await reporting.tenant("ntf")
    base = receivers.base_url
    await apply(
        tenant,
        f"""
language: en
channels:
  - {{name: slack, type: slack, url: "{base}/slack"}}
  - {{name: teams, type: teams, url: "{base}/teams"}}
  - {{name: pager, type: pagerduty, url: "{base}/pagerduty/v2/enqueue", secret: R0UTING-KEY-1}}
  - {{name: am, type: alertmanager, url: "{base}/am"}}
  - name: mail
    type: email
    smtp: {{host: 127.0.0.1, port: {receivers.smtp_port}, sender: slm@example.com, starttls: false}}
rules:
  - {{id: to-slack, triggers: [breached], channel: slack, language: zh-CN}}
  - {{id: to-teams, triggers: [breached], channel: teams}}
  - {{id: to-pager, triggers: [breached], channel: pager}}
  - {{id: to-am, triggers: [breached], channel: am}}
  - {{id: to-mail, triggers: [breached], channel: mail, recipients: [li.wei@example.com]}}
""",
    )
    reporting.clock.pinned = BREACH
    await reporting.publish([breach(tenant, "INC-C1")])
    await eventually(lambda: _all_channels(receivers), "every channel received the breach")
    for path in ("/slack", "/teams", "/pagerduty/v2/enqueue", "/am/api/v2/alerts"):
        [received] = receivers.at(path)
        assert received.problems == [], path
    assert receivers.at("/slack")[0].body["blocks"][0]["text"]["text"] == "SLA 已违约：INC-C1 resolution"
    trigger = receivers.at("/pagerduty/v2/enqueue")[0].body
    assert (trigger["event_action"], trigger["routing_key"], trigger["payload"]["severity"]) == (
        "trigger",
        "R0UTING-KEY-1",
        "critical",
    )
    [mail] = receivers.mails
    assert (mail["To"], mail["Subject"]) == ("li.wei@example.com", "SLA breached: INC-C1 resolution")
    assert [part.get_content_type() for part in mail.iter_parts()] == ["text/plain", "text/html"]

    stopped = BREACH + timedelta(minutes=30)
    reporting.clock.pinned = stopped
    await reporting.publish(
        [
            clock_event(
                tenant.name,
                "INC-C1",
                "stopped_breached",
                stopped,
                metric="resolution",
                state="breached",
                elapsed=16200,
                priority="P1",
                target=14400,
                started_at=BREACH - timedelta(hours=4),
                breached_at=BREACH,
                stopped_at=stopped,
                calendar="24x7",
            )
        ]
    )
    await eventually(lambda: _count(receivers, "/pagerduty/v2/enqueue", 2), "the incident was resolved")
    resolve = receivers.at("/pagerduty/v2/enqueue")[1]
    assert resolve.problems == []
    assert (resolve.body["event_action"], resolve.body["dedup_key"]) == ("resolve", trigger["dedup_key"])
    await eventually(partial(_count, receivers, "/am/api/v2/alerts", 2), "the alert was resolved")
    firing, resolved = (r.body[0] for r in receivers.at("/am/api/v2/alerts"))
    assert receivers.at("/am/api/v2/alerts")[1].problems == []
    assert "endsAt" not in firing
    assert (resolved["labels"], resolved["endsAt"]) == (firing["labels"], stopped.isoformat())


async def test_a_failing_receiver_is_retried_with_backoff_until_it_takes_the_message(
    reporting: Reporting, receivers: Receivers
) -> None:
    tenant = await reporting.tenant("ntf")
    await apply(tenant, webhook_policy(receivers))
    receivers.failures_left["/hook"] = 2
    reporting.clock.pinned = BREACH
    await reporting.publish([breach(tenant, "INC-F1")])
    await eventually(lambda: _status(tenant, "INC-F1", "retrying"), "the first try failed")
    [row] = await delivery_log(tenant, ticket="INC-F1")
    assert row["attempts"] == 1
    assert (
        BREACH + timedelta(seconds=5)
        <= datetime.fromisoformat(row["next_attempt_at"])
        <= BREACH + timedelta(seconds=10)
    )  # 10 s halved, plus up to half of it as jitter
    for hours in (1, 2):
        reporting.clock.pinned = BREACH + timedelta(hours=hours)
        await eventually(partial(_attempts, tenant, "INC-F1", hours + 1), f"try {hours + 1} happened")
    [row] = await delivery_log(tenant, ticket="INC-F1")
    assert (row["status"], row["attempts"]) == ("sent", 3)
    assert len(receivers.at("/hook")) == 1


async def test_policies_are_versioned_secrets_never_shown_and_limits_answered_at_the_door(
    reporting: Reporting, receivers: Receivers
) -> None:
    tenant = await reporting.tenant("ntf")
    client = reporting.client
    first = await apply(tenant, webhook_policy(receivers))
    second = await apply(tenant, webhook_policy(receivers).replace("[oncall]", "[oncall, backup]"))
    assert (first["version"], second["version"]) == (1, 2)
    shown = (await tenant.get("/v1/notification-policies")).json()
    assert shown["version"] == 2
    assert shown["policy"]["channels"][0]["secret"] == "**********"
    assert WEBHOOK_SECRET.removeprefix("whsec_") not in str(shown)
    assert (await tenant.get("/v1/notification-policies", version=1)).json()["policy"]["rules"][0]["recipients"] == [
        "oncall"
    ]
    async with reporting.sessions() as session:
        stored = (
            (
                await session.execute(
                    sa.select(tables.notification_policies.c.document).where(
                        tables.notification_policies.c.tenant_id == tenant.name
                    )
                )
            )
            .scalars()
            .all()
        )
    assert all(WEBHOOK_SECRET.removeprefix("whsec_") not in str(document) for document in stored)

    yaml_headers = {**tenant.headers, "content-type": "application/yaml"}
    too_big = await client.put("/v1/notification-policies", content=b"#" * (300 * 1024), headers=yaml_headers)
    assert too_big.status_code == 413
    broken = await client.put("/v1/notification-policies", content=b"rules: [", headers=yaml_headers)
    assert broken.status_code == 400
    alias = await client.put("/v1/notification-policies", content=b"a: &x [1]\nb: *x\n", headers=yaml_headers)
    assert alias.status_code == 400
    assert "aliases" in alias.json()["detail"]
    too_many = await client.put(
        "/v1/notification-policies",
        json={
            "channels": [{"name": "c", "type": "slack", "url": "http://x"}],
            "rules": [{"id": f"r{i}", "triggers": ["breached"], "channel": "c"} for i in range(201)],
        },
        headers=tenant.headers,
    )
    assert too_many.status_code == 422
    assert too_many.json()["detail"][0]["loc"] == ["rules"]
    stored_nul = await client.put(
        "/v1/notification-policies",
        json={"channels": [{"name": "c", "type": "slack", "url": "http://x\u0000"}]},
        headers=tenant.headers,
    )
    assert stored_nul.status_code == 422
    not_utf8 = await client.put("/v1/notification-policies", content=b"\x80", headers=tenant.headers)
    assert not_utf8.status_code == 400
    deep = await client.put(
        "/v1/notification-policies",
        content=b"[" * 100_000,
        headers={**tenant.headers, "content-type": "application/json"},
    )
    assert deep.status_code == 400
    read_only = await reporting.tenant("ntf-reader")
    async with reporting.sessions() as session, session.begin():  # the same tenant, a key with `read` only
        await session.execute(
            sa.update(tables.api_keys).where(tables.api_keys.c.tenant_id == read_only.name).values(scopes="read")
        )
    refused = await client.put(
        "/v1/notification-policies",
        content=webhook_policy(receivers).encode(),
        headers={**read_only.headers, "content-type": "application/yaml"},
    )
    assert refused.status_code == 403
    other = await reporting.tenant("ntf-other")
    assert (await other.get("/v1/notification-policies")).status_code == 404


async def test_the_delivery_log_and_acknowledgement_belong_to_the_key_s_tenant(
    reporting: Reporting, receivers: Receivers
) -> None:
    tenant = await reporting.tenant("ntf")
    await apply(tenant, webhook_policy(receivers))
    reporting.clock.pinned = BREACH
    await reporting.publish([breach(tenant, "INC-T1")])
    await eventually(lambda: _status(tenant, "INC-T1", "sent"), "the breach was delivered")
    [row] = await delivery_log(tenant, ticket="INC-T1", status="sent")
    assert await delivery_log(tenant, ticket="INC-T1", status="dead") == []
    other = await reporting.tenant("ntf-other")
    assert await delivery_log(other) == []
    assert (await reporting.client.post(f"/v1/notifications/{row['id']}:ack", headers=other.headers)).status_code == 404


def warning_policy(receivers: Receivers) -> str:
    return f"""
channels:
  - {{name: desk, type: webhook, url: "{receivers.base_url}/hook", secret: {WEBHOOK_SECRET}}}
rules:
  - id: p4-warnings
    triggers: [{{event: warning, threshold: 75}}]
    match: {{priority: [P3, P4]}}
    channel: desk
    calendar: {{timezone: Asia/Shanghai, hours: {{mon-fri: ["09:00-12:00", "13:00-18:00"]}}}}
"""


def warning(tenant: Tenant, ticket: str, at: datetime) -> Any:
    return clock_event(
        tenant.name,
        ticket,
        "warning",
        at,
        metric="response",
        state="running",
        elapsed=64800,
        priority="P4",
        started_at=at - timedelta(days=1),
        due_at=at + timedelta(hours=13),
        threshold=75,
    )


async def _count(receivers: Receivers, path: str, count: int) -> bool:
    return len(receivers.at(path)) >= count


async def _all_channels(receivers: Receivers) -> bool:
    return all(
        receivers.at(path) for path in ("/slack", "/teams", "/pagerduty/v2/enqueue", "/am/api/v2/alerts")
    ) and bool(receivers.mails)


async def _logged(tenant: Tenant, ticket: str, count: int) -> bool:
    return len(await delivery_log(tenant, ticket=ticket)) >= count


async def _status(tenant: Tenant, ticket: str, status: str) -> bool:
    return any(row["status"] == status for row in await delivery_log(tenant, ticket=ticket))


async def _attempts(tenant: Tenant, ticket: str, attempts: int) -> bool:
    return any(row["attempts"] >= attempts for row in await delivery_log(tenant, ticket=ticket))


async def test_a_channel_secret_this_replica_cannot_decrypt_is_never_sent_unsigned_and_left_for_a_retry(
    reporting: Reporting, receivers: Receivers
) -> None:
    """A replica without the key a secret was stored under (a rolling key change, a replica configured apart) fails
    the attempt and leaves the row for a retry, which a replica holding the key sends: it is not killed at once."""
    tenant = await reporting.tenant("ntf")
    await apply(tenant, webhook_policy(receivers))
    t = tables.notification_policies

    async def store_secret(token: object) -> None:
        async with reporting.sessions() as session, session.begin():
            await session.execute(
                sa.update(t)
                .where(t.c.tenant_id == tenant.name)
                .values(document=t.c.document.op("||")(sa.cast({"secrets": {"desk": token}}, JSONB)))
            )

    async with reporting.sessions() as session:
        readable = (
            await session.execute(sa.select(t.c.document["secrets"]["desk"].astext).where(t.c.tenant_id == tenant.name))
        ).scalar_one()
    await store_secret("gAAAAA-not-ours")  # as if encrypted under a key this replica does not hold
    reporting.clock.pinned = BREACH
    await reporting.publish([breach(tenant, "INC-K1")])
    await eventually(partial(_attempts, tenant, "INC-K1", 1), "the notification was tried")
    [row] = await delivery_log(tenant, ticket="INC-K1")
    assert (row["status"], row["attempts"]) == ("retrying", 1)
    assert row["last_error"] == "the channel's secret cannot be decrypted with this replica's keys"
    assert receivers.at("/hook") == []

    await store_secret(readable)  # what a replica holding the key reads
    reporting.clock.pinned = BREACH + timedelta(minutes=1)  # past the first retry's pause (at most 10 s)
    await eventually(lambda: _count(receivers, "/hook", 1), "the retry was sent")
    [received] = receivers.at("/hook")
    assert received.problems == []  # signed with the channel's secret
    [row] = await delivery_log(tenant, ticket="INC-K1")
    assert (row["status"], row["attempts"]) == ("sent", 2)


async def test_an_event_received_long_after_its_instant_notifies_nobody_and_a_stop_with_nothing_paged_no_resolve(
    reporting: Reporting, receivers: Receivers
) -> None:
    tenant = await reporting.tenant("ntf")
    await apply(
        tenant,
        f"""
channels:
  - {{name: desk, type: webhook, url: "{receivers.base_url}/hook", secret: {WEBHOOK_SECRET}}}
  - {{name: pager, type: pagerduty, url: "{receivers.base_url}/pagerduty/v2/enqueue", secret: R0UTING-KEY-2}}
rules:
  - {{id: p1-breaches, triggers: [breached], match: {{priority: P1}}, channel: desk}}
  - {{id: p1-pages, triggers: [breached], match: {{priority: P1}}, channel: pager}}
""",
    )
    reporting.clock.pinned = BREACH + timedelta(hours=25)  # a read model rebuilt from the topic, a day on
    met = BREACH + timedelta(minutes=5)
    await reporting.publish(
        [
            breach(tenant, "INC-S1"),
            clock_event(
                tenant.name,
                "INC-S2",
                "met",
                met,
                metric="resolution",
                state="met",
                elapsed=600,
                priority="P1",
                started_at=BREACH,
                stopped_at=met,
                calendar="24x7",
                target=14400,
            ),
        ]
    )
    await reporting.wait_applied(tenant.name, 2)
    await passes(reporting)
    log = await delivery_log(tenant)
    assert sorted((row["ticket_id"], row["rule_id"], row["status"], row["reason"]) for row in log) == [
        ("INC-S1", "p1-breaches", "suppressed", "stale: received 1 day, 1:00:00 after the event"),
        ("INC-S1", "p1-pages", "suppressed", "stale: received 1 day, 1:00:00 after the event"),
    ]
    assert receivers.requests == []


async def test_a_rule_filtered_on_the_assignment_group_follows_the_ticket_s_latest_snapshot(
    reporting: Reporting, receivers: Receivers
) -> None:
    tenant = await reporting.tenant("ntf")
    await apply(
        tenant,
        webhook_policy(receivers).replace("match: {priority: P1}", "match: {priority: P1, assignment_group: network}"),
    )
    reporting.clock.pinned = BREACH
    opened = BREACH - timedelta(hours=4)
    await reporting.publish(
        [
            ticket_event(tenant.name, "INC-G1", opened, "created", "open", priority="P1", assignment_group="desk"),
            ticket_event(
                tenant.name,
                "INC-G1",
                opened + timedelta(hours=1),
                "updated",
                "open",
                priority="P1",
                assignment_group="network",
            ),
            ticket_event(tenant.name, "INC-G2", opened, "created", "open", priority="P1", assignment_group="desk"),
        ]
    )
    await reporting.wait_applied(tenant.name, 3)
    await reporting.publish([breach(tenant, "INC-G1"), breach(tenant, "INC-G2")])
    await reporting.wait_applied(tenant.name, 5)
    await eventually(partial(_count, receivers, "/hook", 1), "the network ticket's breach was delivered")
    await passes(reporting)
    assert [r.body["data"]["ticket_id"] for r in receivers.at("/hook")] == ["INC-G1"]
    assert [row["ticket_id"] for row in await delivery_log(tenant)] == ["INC-G1"]


async def test_a_tenant_whose_receiver_hangs_does_not_hold_up_another_tenant(
    reporting: Reporting, receivers: Receivers
) -> None:
    slow, quick = await reporting.tenant("ntf-slow"), await reporting.tenant("ntf-quick")
    await apply(slow, webhook_policy(receivers).replace("/hook", "/hook/other"))
    await apply(quick, webhook_policy(receivers))
    receivers.path_delays["/hook/other"] = 2.0  # the slow tenant's receiver: 40 take 20 s, 4 at a time
    reporting.clock.pinned = BREACH
    await reporting.publish([breach(slow, f"INC-H{n}") for n in range(40)])
    await eventually(partial(_count, receivers, "/hook/other", 1), "the slow tenant's deliveries began")
    await reporting.publish([breach(quick, "INC-Q1")])
    await eventually(partial(_count, receivers, "/hook", 1), "the quick tenant's breach was delivered")
    assert len(receivers.at("/hook/other")) < 40  # delivered while the slow tenant still had some to go
    await eventually(partial(_count, receivers, "/hook/other", 40), "the slow tenant's were all delivered")


async def test_the_signed_link_in_the_message_acknowledges_without_a_key_and_only_by_post(
    reporting: Reporting, receivers: Receivers
) -> None:
    tenant = await reporting.tenant("ntf")
    await apply(
        tenant,
        webhook_policy(
            receivers,
            """    escalation:
      levels: [{after: 0m}, {after: 10m}]
""",
        ),
    )
    reporting.clock.pinned = BREACH
    await reporting.publish([breach(tenant, "INC-A1")])
    await eventually(partial(_count, receivers, "/hook", 1), "level 0 went out")
    link = receivers.at("/hook")[0].body["data"]["ack_link"]
    assert link.startswith("http://reporting.test/v1/notification-acks/")
    path = link.removeprefix("http://reporting.test")
    client = reporting.client
    page = await client.get(path)
    assert (page.status_code, 'method="post"' in page.text) == (200, True)
    [level0, level1] = await delivery_log(tenant, ticket="INC-A1")
    assert (level0["acked_at"], level1["status"]) == (None, "pending")  # opening the link acknowledged nothing

    forged = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    assert (await client.post(forged)).status_code == 403
    done = await client.post(path)
    assert done.status_code == 200, done.text
    [level0, level1] = await delivery_log(tenant, ticket="INC-A1")
    assert (level0["acked_at"], level1["status"], level1["reason"]) == (
        BREACH.isoformat(),
        "suppressed",
        "acknowledged",
    )
    reporting.clock.pinned = BREACH + timedelta(days=8)
    assert (await client.post(path)).status_code == 403  # expired after 7 days
