"""A batch applied at once leaves exactly the read models that its events applied one at a time leave.

Reporting applies a batch's ticket snapshots and clock transitions together (one statement per table); this
compares it, on the real PostgreSQL, with event-by-event application on random timelines: several events per
ticket and per cycle in one batch, out of order, repeated, with changing customers, recalculations and survey
answers; cycles numbered by the engine's `sequence` (some after unnumbered events of an older engine) and
cycles without it.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from reporting import tables
from reporting.handlers import ReadModels
from reporting.unit_of_work import ReportingUnitOfWork
from slm_shared.events import CloudEvent
from tests.integration.reporting.conftest import Reporting
from tests.integration.reporting.events import clock_event, feedback_event, ticket_event

pytestmark = pytest.mark.integration

STEPS = [
    ("created", "new"),
    ("updated", "in_progress"),
    ("updated", "pending_customer"),
    ("resolved", "resolved"),
    ("reopened", "open"),
    ("closed", "closed"),
    ("cancelled", "cancelled"),
]
RECEIVED_AT = datetime(2026, 11, 1, tzinfo=UTC)


def random_events(rng: random.Random, tenant: str) -> list[CloudEvent]:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    events = []
    for number in range(8):
        ticket = f"INC-{number}"
        for _ in range(rng.randint(1, 6)):
            action, status = rng.choice(STEPS)
            at = start + timedelta(hours=rng.randint(0, 96), minutes=rng.randint(0, 59))
            events.append(
                ticket_event(
                    tenant,
                    ticket,
                    at,
                    action,
                    status,
                    priority=rng.choice(["P1", "P2"]),
                    customer=rng.choice(["acme", "globex"]),
                )
            )
        if rng.random() < 0.5:
            events.append(feedback_event(tenant, ticket, start + timedelta(days=5), rng.randint(1, 5)))
        events += random_clock_events(rng, tenant, ticket, start)
    rng.shuffle(events)  # arrival order is not event-time order
    events += rng.sample(events, 4)  # redeliveries inside the batch
    return events


def random_clock_events(rng: random.Random, tenant: str, ticket: str, start: datetime) -> list[CloudEvent]:
    """Transitions of one or two response cycles: running, then met or breached, sometimes recalculated.

    Most cycles are numbered as the engine numbers them (`sequence` in publication order; a `recalculated`
    dated when it was published), some of those after events of an engine without sequences."""
    events = []
    for cycle in range(1, rng.randint(1, 2) + 1):
        numbered, older = rng.random() < 0.7, rng.randint(0, 1)
        started = start + timedelta(hours=rng.randint(0, 48))
        published = [
            clock_event(
                tenant,
                ticket,
                "started",
                started,
                metric="response",
                state="running",
                elapsed=0,
                priority="P2",
                started_at=started,
                cycle=cycle,
                sequence=1 if numbered and not older else None,
            )
        ]
        for _ in range(rng.randint(1, 3)):
            stopped = started + timedelta(minutes=rng.randint(5, 180))
            elapsed = int((stopped - started).total_seconds())
            breached = elapsed > 3600
            transition = rng.choice(["stopped_breached" if breached else "met", "recalculated"])
            published.append(
                clock_event(
                    tenant,
                    ticket,
                    transition,
                    RECEIVED_AT if numbered and transition == "recalculated" else stopped,
                    metric="response",
                    state="breached" if breached else "met",
                    elapsed=elapsed,
                    priority="P2",
                    started_at=started,
                    stopped_at=stopped,
                    cycle=cycle,
                    breached_at=started + timedelta(hours=1) if breached else None,
                    customer=rng.choice(["acme", "globex"]),
                    sequence=len(published) + 1 - older if numbered and len(published) >= older else None,
                )
            )
        events += published
    return events


def for_tenant(events: list[CloudEvent], tenant: str) -> list[CloudEvent]:
    return [event.model_copy(update={"tenantid": tenant}) for event in events]


async def read_models_of(reporting: Reporting, tenant: str) -> dict[str, Any]:
    def rows(table: sa.Table, *order: str, without: tuple[str, ...] = ()) -> sa.Select[Any]:
        columns = [c for c in table.c if c.name not in ("tenant_id", *without)]
        return sa.select(*columns).where(table.c.tenant_id == tenant).order_by(*(table.c[o] for o in order))

    async with reporting.sessions() as session:
        found = {
            name: [tuple(r) for r in (await session.execute(statement)).all()]
            for name, statement in {
                "transitions": rows(tables.ticket_transitions, "ticket_id", "position"),
                "facts": rows(tables.ticket_facts, "ticket_id", without=("updated_at",)),
                "daily": rows(tables.ticket_daily, "day", "service", "customer", "priority"),
                "cycles": rows(
                    tables.clock_outcomes, "ticket_id", "policy_id", "metric", "cycle", without=("updated_at",)
                ),
                "clock_daily": rows(
                    tables.clock_daily,
                    *(c.name for c in tables.clock_daily.primary_key.columns if c.name != "tenant_id"),
                ),
                "stats": rows(tables.event_stats, "event_type", "hour"),
                "feedback": sa.select(tables.feedback.c.ticket_id, tables.feedback.c.customer)
                .where(tables.feedback.c.tenant_id == tenant)
                .order_by(tables.feedback.c.ticket_id),
            }.items()
        }
    # A rollup row whose deltas netted to zero exists or not depending on the batch size; both count nothing.
    found["daily"] = [row for row in found["daily"] if any(row[4:])]
    found["clock_daily"] = [row for row in found["clock_daily"] if any(row[-4:])]
    return found


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_batch_leaves_what_its_events_one_by_one_leave(reporting: Reporting, seed: int) -> None:
    read_models = ReadModels(lambda: ReportingUnitOfWork(reporting.sessions), now=lambda: RECEIVED_AT)
    events = random_events(random.Random(seed), "template")
    together, alone = f"together-{uuid.uuid4().hex[:8]}", f"alone-{uuid.uuid4().hex[:8]}"

    outcomes_together = await read_models.apply_batch(for_tenant(events, together))
    outcomes_alone = [(await read_models.apply_batch([event]))[0] for event in for_tenant(events, alone)]

    assert outcomes_together == outcomes_alone
    assert outcomes_together.count("duplicate") == 4
    batch, single = await read_models_of(reporting, together), await read_models_of(reporting, alone)
    assert batch["transitions"], "the random timelines produced no volume transitions"
    assert batch["clock_daily"], "the random clocks produced no outcomes"
    assert batch == single
    # A numbered cycle ends on its highest sequence, whatever the arrival order.
    highest: dict[tuple[Any, ...], int] = {}
    for event in events:
        if event.type == "sla.clock.v1" and event.data.get("sequence") is not None:
            key = (event.data["ticket_id"], event.data["policy_id"], event.data["metric"], event.data["cycle"])
            highest[key] = max(highest.get(key, 0), int(str(event.data["sequence"])))
    async with reporting.sessions() as session:
        o = tables.clock_outcomes
        ended = {
            (r.ticket_id, r.policy_id, r.metric, r.cycle): r.last_sequence
            for r in await session.execute(sa.select(o).where(o.c.tenant_id == together))
        }
    assert highest
    assert {key: ended[key] for key in highest} == highest
