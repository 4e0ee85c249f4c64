"""The read-model handler driven through fakes of its ports (tests/unit/reporting/fakes.py): what a batch
commits, what a redelivery does (nothing), the rollup deltas and counters it writes, the notifications it asks
for, and the rollback when a step fails. No broker, no database: runs in well under a second."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from reporting.handlers import ReadModels
from slm_shared.events import CloudEvent
from tests.integration.reporting.events import clock_event, feedback_event, slo_alert_event, ticket_event
from tests.unit.reporting.fakes import FakeDatabase

TENANT = "t1"
RECEIVED = datetime(2026, 10, 6, 12, 0, tzinfo=UTC)
CYCLE = (TENANT, "T-1", "gold-incidents", "response", 1)
# The clock_daily key of T-1's response cycle stopping on 5 October: tenant, UTC day, then service, customer,
# agreement, policy, policy version, calendar, metric, priority (clock_event's defaults).
DAY_KEY = (TENANT, date(2026, 10, 5), "email", "acme", "SLA", "gold-incidents", 3, "cn-business", "response", "P1")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 10, day, hour, minute, tzinfo=UTC)


def started(sequence: int = 1) -> CloudEvent:
    return clock_event(
        TENANT,
        "T-1",
        "started",
        at(5, 9),
        metric="response",
        state="running",
        elapsed=0,
        priority="P1",
        started_at=at(5, 9),
        due_at=at(5, 9, 15),
        sequence=sequence,
    )


def met(sequence: int = 2) -> CloudEvent:
    # Met after 600 of its 900 seconds.
    return clock_event(
        TENANT,
        "T-1",
        "met",
        at(5, 9, 10),
        metric="response",
        state="met",
        elapsed=600,
        priority="P1",
        started_at=at(5, 9),
        stopped_at=at(5, 9, 10),
        sequence=sequence,
    )


def handler(database: FakeDatabase) -> ReadModels:
    return ReadModels(database.unit, now=lambda: RECEIVED)


async def test_a_clock_batch_commits_the_winning_cycle_and_its_rollup_delta() -> None:
    database = FakeDatabase()
    read_models = handler(database)

    outcomes = await read_models.apply_batch([started(), met()])

    assert outcomes == ["applied", "applied"]
    assert database.committed == [True]
    cycle = database.tables.cycles[CYCLE]
    assert (cycle["state"], cycle["last_sequence"], cycle["recalculations"]) == ("met", 2, 0)
    [deltas] = database.tables.flushed
    # The running start counts nowhere; the met stop adds one met cycle of 600 s, none over target.
    assert deltas.clock_daily == {DAY_KEY: [1, 0, 600, 0]}
    [counters] = deltas.stats.values()
    assert (counters["events"], counters["out_of_order"], counters["recalculations"]) == (2, 0, 0)
    assert deltas.first_seen == {TENANT: at(5, 9)}


async def test_a_redelivered_batch_changes_nothing() -> None:
    database = FakeDatabase()
    read_models = handler(database)
    batch = [started(), met()]
    await read_models.apply_batch(batch)
    cycles_before = {key: dict(row) for key, row in database.tables.cycles.items()}

    outcomes = await read_models.apply_batch(batch)

    assert outcomes == ["duplicate", "duplicate"]
    assert database.tables.cycles == cycles_before
    second = database.tables.flushed[1]
    assert (second.clock_daily, second.stats, second.late_changes) == ({}, {}, [])
    assert (database.tables.planned[1].clocks, database.tables.planned[1].alerts) == ([], [])


async def test_an_event_twice_in_one_batch_applies_once() -> None:
    database = FakeDatabase()
    read_models = handler(database)
    event = met()
    redelivered = event.model_copy()  # as the consumer parses it again from the second record

    assert await read_models.apply_batch([event, redelivered]) == ["applied", "duplicate"]
    assert database.tables.flushed[0].clock_daily == {DAY_KEY: [1, 0, 600, 0]}


async def test_a_recalculation_moves_the_cycle_from_met_to_breached() -> None:
    database = FakeDatabase()
    read_models = handler(database)
    await read_models.apply_batch([started(), met()])
    # A late pause proved wrong: the cycle really took 1000 s, 100 over its 900 s target.
    recalculated = clock_event(
        TENANT,
        "T-1",
        "recalculated",
        at(5, 9, 10),
        metric="response",
        state="breached",
        elapsed=1000,
        priority="P1",
        started_at=at(5, 9),
        stopped_at=at(5, 9, 10),
        breached_at=at(5, 9, 8),
        sequence=3,
    )

    assert await read_models.apply_batch([recalculated]) == ["applied"]

    # Same day and dimensions: the met contribution (1, 0, 600, 0) out, the breached one (0, 1, 1000, 100) in.
    assert database.tables.flushed[1].clock_daily == {DAY_KEY: [-1, 1, 400, 100]}
    [counters] = database.tables.flushed[1].stats.values()
    assert counters["recalculations"] == 1
    cycle = database.tables.cycles[CYCLE]
    assert (cycle["state"], cycle["recalculations"]) == ("breached", 1)


async def test_an_overtaken_transition_is_counted_out_of_order_and_changes_nothing() -> None:
    database = FakeDatabase()
    read_models = handler(database)
    await read_models.apply_batch([met(sequence=2)])

    assert await read_models.apply_batch([started(sequence=1)]) == ["applied"]

    assert database.tables.cycles[CYCLE]["state"] == "met"
    assert database.tables.flushed[1].clock_daily == {}
    [counters] = database.tables.flushed[1].stats.values()
    assert counters["out_of_order"] == 1


async def test_a_ticket_batch_derives_its_volume_deltas() -> None:
    database = FakeDatabase()
    read_models = handler(database)
    opened = ticket_event(TENANT, "T-9", at(5, 8), "created", "new", priority="P2", assignment_group="desk")
    resolved = ticket_event(TENANT, "T-9", at(6, 8), "updated", "resolved", priority="P2")

    assert await read_models.apply_batch([opened, resolved]) == ["applied", "applied"]

    # created, resolved, reopened, cancelled, backlog change: one in on the 5th, out again on the 6th.
    assert database.tables.flushed[0].ticket_daily == {
        (TENANT, date(2026, 10, 5), "email", "acme", "P2"): [1, 0, 0, 0, 1],
        (TENANT, date(2026, 10, 6), "email", "acme", "P2"): [0, 1, 0, 0, -1],
    }
    created, head, group = database.tables.heads[(TENANT, "T-9")]
    # The head is the resolving snapshot, which carries no assignment group.
    assert (created, head.status, group) == (at(5, 8), "resolved", None)


async def test_a_feedback_batch_stores_the_answer_once_and_notes_a_closed_period() -> None:
    database = FakeDatabase()
    database.tables.closed[TENANT] = [(at(1, 0), at(6, 0))]
    read_models = handler(database)
    answer = feedback_event(TENANT, "T-1", at(5, 10), score=4)

    assert await read_models.apply_batch([answer]) == ["applied"]
    assert await read_models.apply_batch([answer]) == ["duplicate"]

    [stored] = database.tables.feedback.values()
    assert stored.score == 4
    [note] = database.tables.flushed[0].late_changes
    assert (note["period_start"], note["event_id"], note["received_at"]) == (at(1, 0), answer.id, RECEIVED)
    [counters] = database.tables.flushed[0].stats.values()
    assert counters["after_close"] == 1


async def test_notifications_are_planned_for_the_first_deliveries_only() -> None:
    database = FakeDatabase()
    read_models = handler(database)
    clock = met()
    alert = slo_alert_event(TENANT, at(5, 9, 5), "email", slo_id="availability", alert="page", state="firing")
    ticket = ticket_event(TENANT, "T-1", at(5, 9), "created", "new", priority="P1")

    await read_models.apply_batch([clock, alert, clock.model_copy(), ticket])

    [planned] = database.tables.planned
    assert [event for event, _ in planned.clocks] == [clock]
    assert [event for event, _ in planned.alerts] == [alert]
    assert planned.now == RECEIVED


async def test_a_failing_step_rolls_the_whole_batch_back_and_a_redelivery_applies_it() -> None:
    database = FakeDatabase()
    database.planning_fails_with = RuntimeError("planner down")
    read_models = handler(database)
    batch = [started(), met()]

    with pytest.raises(RuntimeError, match="planner down"):
        await read_models.apply_batch(batch)

    assert database.committed == [False]
    assert (database.tables.inbox, database.tables.cycles, database.tables.flushed) == (set(), {}, [])
    database.planning_fails_with = None
    assert await read_models.apply_batch(batch) == ["applied", "applied"]
    assert database.tables.flushed[0].clock_daily == {DAY_KEY: [1, 0, 600, 0]}
