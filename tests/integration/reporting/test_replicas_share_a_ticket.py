"""Two replicas at once on one ticket: the consumer group shares out each topic's partitions separately, so one
replica may apply a ticket's first snapshot while another applies its survey answer. The answer takes its
customer from the ticket and the snapshot writes the customer onto the ticket's answers; run side by side, each
transaction missed the other's uncommitted row and the answer was counted under no customer ("unknown") for
good. Whichever commits first, every answer must end with its ticket's customer."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from reporting import tables
from reporting.handlers import ReadModels
from reporting.unit_of_work import ReportingUnitOfWork
from tests.integration.reporting.conftest import Reporting
from tests.integration.reporting.events import feedback_event, ticket_event

pytestmark = pytest.mark.integration

ROUNDS, TICKETS = 5, 40  # the interleaving of the two transactions differs from round to round
AT = datetime(2026, 10, 5, tzinfo=UTC)


async def test_an_answer_applied_beside_its_tickets_first_snapshot_keeps_the_tickets_customer(
    reporting: Reporting,
) -> None:
    tenant = f"replicas-{uuid.uuid4().hex[:8]}"
    replicas = [
        ReadModels(lambda: ReportingUnitOfWork(reporting.sessions), now=lambda: AT + timedelta(days=1))
        for _ in range(2)
    ]
    for round_ in range(ROUNDS):
        tickets = [f"INC-{round_}-{n}" for n in range(TICKETS)]
        snapshots = [ticket_event(tenant, t, AT, "created", "new", priority="P2", customer="globex") for t in tickets]
        answers = [feedback_event(tenant, t, AT + timedelta(hours=1), 4) for t in tickets]
        # Answers first on one, snapshots on the other, started together.
        await asyncio.gather(replicas[0].apply_batch(answers), replicas[1].apply_batch(snapshots))

    f = tables.feedback
    async with reporting.sessions() as session:
        customers = (
            await session.execute(
                sa.select(f.c.customer, sa.func.count()).where(f.c.tenant_id == tenant).group_by(f.c.customer)
            )
        ).all()
    assert dict(customers) == {"globex": ROUNDS * TICKETS}
