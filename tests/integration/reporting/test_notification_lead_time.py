"""Lead-time notifications (`before_due: 30m`) on the real stack, counted in the clock's business time: the
calendar announced by the engine (`sla.calendars.v1`, the Shanghai office hours of test_calendars.py: Monday to
Friday 09:00-12:00 and 13:00-18:00), reporting in-process with its clock pinned, a real webhook receiver.

INC-L1 starts Monday 7 December 09:00 with 3.5 h: due 13:30 (09:00-12:00, 13:00-13:30). Thirty business
minutes before that is 12:00, not 13:00: the lunch hour does not count. At 12:00 it has used 3 h (10,800 s) and
has 1,800 s left.
INC-L2 starts alike, pauses at 11:00 (2 h used) and resumes at 14:00: 1.5 h left, due 15:30, and its lead time
moves to 15:00. The 12:00 one is suppressed (paused); the resume re-arms the same key, sent once at 15:00.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from functools import partial

import pytest
import sqlalchemy as sa

from reporting import tables
from slm_shared import topics
from slm_shared.events import CloudEvent
from tests.integration.reporting.conftest import Reporting, Tenant
from tests.integration.reporting.events import clock_event, local
from tests.integration.reporting.receivers import WEBHOOK_SECRET, Receivers, running_receivers
from tests.integration.reporting.test_calendars import calendar_event
from tests.integration.reporting.test_notifications import _count, apply, delivery_log, eventually, passes

pytestmark = pytest.mark.integration

START = local("12-07 09:00")


@pytest.fixture
async def receivers(reporting: Reporting) -> AsyncIterator[Receivers]:
    async with running_receivers() as running:
        yield running
    reporting.clock.pinned = None


def transition(
    tenant: Tenant,
    ticket: str,
    name: str,
    at: datetime,
    elapsed: int,
    sequence: int,
    due_at: datetime | None,
    state: str = "running",
) -> CloudEvent:
    return clock_event(
        tenant.name,
        ticket,
        name,
        at,
        metric="resolution",
        state=state,
        elapsed=elapsed,
        priority="P3",
        started_at=START,
        target=12_600,
        due_at=due_at,
        calendar="cn-office",
        version=3,
        sequence=sequence,
    )


async def _calendar_kept(reporting: Reporting, tenant: str) -> bool:
    async with reporting.sessions() as session:
        return bool(
            (
                await session.execute(
                    sa.select(sa.func.count())
                    .select_from(tables.calendars)
                    .where(tables.calendars.c.tenant_id == tenant)
                )
            ).scalar_one()
        )


async def test_thirty_business_minutes_before_due_is_told_once_and_a_pause_moves_it_to_after_the_resume(
    reporting: Reporting, receivers: Receivers
) -> None:
    tenant = await reporting.tenant("ntf-lead")
    await reporting.producer.send(
        topics.CALENDARS,
        calendar_event(tenant.name, 3).to_json_bytes(),
        key=topics.calendar_key(tenant.name, "cn-office").encode(),
    )
    await reporting.producer.flush()
    await eventually(partial(_calendar_kept, reporting, tenant.name), "the calendar was kept")
    await apply(
        tenant,
        f"""
channels:
  - {{name: desk, type: webhook, url: "{receivers.base_url}/hook", secret: {WEBHOOK_SECRET}}}
rules:
  - {{id: soon, triggers: [{{before_due: 30m}}], channel: desk, recipients: [resolver]}}
""",
    )
    reporting.clock.pinned = START
    due = local("12-07 13:30")
    await reporting.publish(
        [
            transition(tenant, "INC-L1", "started", START, 0, 1, due),
            transition(tenant, "INC-L2", "started", START, 0, 1, due),
        ]
    )
    await reporting.wait_applied(tenant.name, 2)
    paused_at = local("12-07 11:00")
    reporting.clock.pinned = paused_at
    await reporting.publish([transition(tenant, "INC-L2", "paused", paused_at, 7_200, 2, None, state="paused")])
    await reporting.wait_applied(tenant.name, 3)

    reporting.clock.pinned = local("12-07 11:59:59")
    await passes(reporting)
    assert receivers.at("/hook") == []  # a second early: nothing
    reporting.clock.pinned = local("12-07 12:00")
    await eventually(partial(_count, receivers, "/hook", 1), "INC-L1's lead time was told")
    await passes(reporting)
    [told] = receivers.at("/hook")
    assert told.problems == []
    data = told.body["data"]
    assert (data["ticket_id"], data["trigger"], data["title"]) == (
        "INC-L1",
        "before_due:1800s",
        "SLA due soon: INC-L1 resolution, due 2026-12-07T05:30+00:00",
    )
    assert (data["elapsed_seconds_now"], data["remaining_seconds_now"], data["values_exact"]) == (10_800, 1_800, True)
    [paused_row] = await delivery_log(tenant, ticket="INC-L2")
    assert (paused_row["status"], paused_row["reason"]) == ("suppressed", "the clock is paused")

    resumed_at = local("12-07 14:00")
    reporting.clock.pinned = resumed_at
    resume = transition(tenant, "INC-L2", "resumed", resumed_at, 7_200, 3, local("12-07 15:30"))
    await reporting.publish([resume])
    await reporting.wait_applied(tenant.name, 4)
    reporting.clock.pinned = local("12-07 15:00")
    await eventually(partial(_count, receivers, "/hook", 2), "INC-L2's lead time was told after the resume")
    await reporting.publish([resume])  # redelivered after sending: the key is spent
    await passes(reporting)

    assert [h.body["data"]["ticket_id"] for h in receivers.at("/hook")] == ["INC-L1", "INC-L2"]
    second = receivers.at("/hook")[1].body["data"]
    assert (second["elapsed_seconds_now"], second["remaining_seconds_now"]) == (10_800, 1_800)
    [row] = await delivery_log(tenant, ticket="INC-L2")
    assert (row["trigger"], row["status"], datetime.fromisoformat(row["due_at"])) == (
        "before_due:1800s",
        "sent",
        local("12-07 15:00"),
    )
