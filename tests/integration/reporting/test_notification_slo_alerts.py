"""An SLO alert notification is re-checked at sending time against the alert's state in the read model, on the
real stack (reporting in-process with its clock pinned, a real webhook receiver): the `page` alert of SLO
`api-success` fires at 03:00 UTC and is told at once (level 0); its escalation is due 15 minutes later, but the
alert resolved at 03:05, so the escalation is suppressed. A later firing is a new episode, told again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from tests.integration.reporting.conftest import Reporting
from tests.integration.reporting.events import slo_alert_event
from tests.integration.reporting.receivers import WEBHOOK_SECRET, Receivers, running_receivers
from tests.integration.reporting.test_notifications import _count, apply, eventually, passes

pytestmark = pytest.mark.integration

FIRED = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)


@pytest.fixture
async def receivers(reporting: Reporting) -> AsyncIterator[Receivers]:
    async with running_receivers() as running:
        yield running
    reporting.clock.pinned = None


async def test_an_slo_alert_resolved_before_its_escalation_suppresses_the_escalation(
    reporting: Reporting, receivers: Receivers
) -> None:
    tenant = await reporting.tenant("ntf-slo")
    await apply(
        tenant,
        f"""
channels:
  - {{name: desk, type: webhook, url: "{receivers.base_url}/hook", secret: {WEBHOOK_SECRET}}}
rules:
  - id: pages
    triggers: [{{event: slo_alert, alert: page}}]
    channel: desk
    escalation: {{levels: [{{after: 0m, recipients: [oncall]}}, {{after: 15m, recipients: [lead]}}]}}
""",
    )
    reporting.clock.pinned = FIRED
    await reporting.publish(
        [slo_alert_event(tenant.name, FIRED, "api", slo_id="api-success", alert="page", state="firing", burn_rate=14.4)]
    )
    await eventually(partial(_count, receivers, "/hook", 1), "the page was told")
    resolved = FIRED + timedelta(minutes=5)
    reporting.clock.pinned = resolved
    await reporting.publish(
        [slo_alert_event(tenant.name, resolved, "api", slo_id="api-success", alert="page", state="resolved")]
    )
    await reporting.wait_applied(tenant.name, 2)
    reporting.clock.pinned = FIRED + timedelta(minutes=15)
    await passes(reporting)

    assert [h.body["data"]["level"] for h in receivers.at("/hook")] == [0]
    answer = await tenant.get("/v1/notifications")
    rows = sorted(answer.json()["notifications"], key=lambda row: row["level"])
    assert [(row["trigger"], row["level"], row["status"], row["reason"]) for row in rows] == [
        ("slo:page", 0, "sent", None),
        ("slo:page", 1, "suppressed", "the SLO alert resolved at 2026-12-08T03:05:00+00:00"),
    ]

    # It fires again at 04:00: a new episode, told at once, its escalation pending until 04:15.
    again = FIRED + timedelta(hours=1)
    reporting.clock.pinned = again
    await reporting.publish(
        [slo_alert_event(tenant.name, again, "api", slo_id="api-success", alert="page", state="firing", burn_rate=14.4)]
    )
    await eventually(partial(_count, receivers, "/hook", 2), "the second episode was told")
    await passes(reporting)
    assert [h.body["data"]["level"] for h in receivers.at("/hook")] == [0, 0]
