"""The sla-engine's handlers driven through in-memory fakes of their ports (fakes.py): no database, no broker.

The ticket consumer (store path: the inbox drops redeliveries, touched tickets become due, nothing else), the
reconcile round (a due ticket's transitions become outbox events and its next timer; a round redone publishes
nothing new; a failed round keeps nothing), and the SLO consumer (a measurement in, a status event out).
The real-stack behaviour of the same paths is tests/integration/sla_engine.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from sla_engine.bundles.cache import BundleCache
from sla_engine.clocks.handlers import ClockKeeper
from sla_engine.ports import EVENTS_DUE, DueTimer
from sla_engine.slos.handlers import SloKeeper
from slm_shared import topics
from slm_shared.outbox import OutgoingEvent, OutgoingRecord
from tests.support.events import ticket_event
from tests.unit.sla_engine.fakes import FakeDueQueue, FakeStore, FakeUnitOfWork, FakeUnits

TENANT = "acme"
T0 = datetime(2026, 11, 2, 8, tzinfo=UTC)
# P2 resolution within 8 h, warnings at 50 % (4 h) and 75 % (6 h).
BUNDLE = """\
policies:
  - id: gold-resolution
    name: Gold resolution
    agreement: SLA
    match: {kind: incident}
    metrics:
      - metric: resolution
        calendar: 24x7
        targets: {P2: 8h}
        pause: {statuses: [pending_customer]}
        stop: {statuses: [resolved]}
        warn_at: [50, 75]
"""
SLO_BUNDLE = """\
slos:
  - id: api-success
    service: api
    sli: {type: ratio, sli: requests}
    objective: 99.9
    window: {rolling: 28d}
"""


class Now:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def ticket_records(*events: dict[str, Any]) -> list[ConsumerRecord[bytes, bytes]]:
    values = [json.dumps(event).encode() for event in events]
    return [
        ConsumerRecord(topics.TICKETS, 0, offset, 0, 0, None, value, None, 0, len(value), [])
        for offset, value in enumerate(values)
    ]


def published(store: FakeStore) -> list[dict[str, Any]]:
    """The outbox's events as the relay would send them."""
    return [
        json.loads(item.payload if isinstance(item, OutgoingRecord) else item.event.to_json_bytes())
        for item in store.outbox
        if isinstance(item, OutgoingEvent | OutgoingRecord)
    ]


@pytest.fixture
def units() -> FakeUnits:
    return FakeUnits(FakeStore(versions={TENANT: [BUNDLE]}))


@pytest.fixture
async def keeper(units: FakeUnits) -> AsyncIterator[ClockKeeper]:
    now = Now(T0 + timedelta(hours=5))
    clock_keeper = ClockKeeper(units, BundleCache(), now)
    yield clock_keeper
    clock_keeper.close()


async def test_a_snapshot_batch_is_stored_and_its_ticket_made_due_once(units: FakeUnits, keeper: ClockKeeper) -> None:
    batch = ticket_records(
        ticket_event(TENANT, "INC-1", T0, event_id="e1"),
        ticket_event(TENANT, "INC-1", T0 + timedelta(hours=1), action="updated", status="in_progress", event_id="e2"),
    )
    assert await keeper.on_ticket_records(batch) == ["applied", "applied"]
    assert units.made[-1].committed
    assert [s.event_id for s in units.store.snapshots[(TENANT, "INC-1")]] == ["e1", "e2"]
    assert units.store.timers == {(TENANT, "INC-1"): DueTimer(TENANT, "INC-1", T0 + timedelta(hours=5), EVENTS_DUE)}
    assert keeper.tickets_due.is_set()
    assert units.store.outbox == []  # nothing is evaluated on the store path

    keeper.tickets_due.clear()
    assert await keeper.on_ticket_records(batch) == ["duplicate", "duplicate"]  # a redelivery
    assert len(units.store.snapshots[(TENANT, "INC-1")]) == 2
    assert not keeper.tickets_due.is_set()


async def test_a_tenant_without_configuration_is_stored_but_never_due(units: FakeUnits, keeper: ClockKeeper) -> None:
    await keeper.on_ticket_records(ticket_records(ticket_event("newcomer", "INC-9", T0, event_id="n1")))
    assert [s.event_id for s in units.store.snapshots[("newcomer", "INC-9")]] == ["n1"]
    assert units.store.timers == {}


async def test_a_round_publishes_the_transitions_due_and_schedules_the_next(
    units: FakeUnits, keeper: ClockKeeper
) -> None:
    await keeper.on_ticket_records(ticket_records(ticket_event(TENANT, "INC-1", T0, event_id="e1")))
    assert await keeper.reconcile_due(limit=10, per_tenant=10, budget_seconds=60) == 1
    assert units.made[-1].committed
    # At T0 + 5 h: started at T0, 50 % of 8 h at T0 + 4 h; 75 % (T0 + 6 h) is the next timer.
    events = published(units.store)
    assert [(e["data"]["transition"], e["data"]["threshold"], e["data"]["sequence"], e["time"]) for e in events] == [
        ("started", None, 1, "2026-11-02T08:00:00Z"),
        ("warning", 50, 2, "2026-11-02T12:00:00Z"),
    ]
    assert {e["tenantid"] for e in events} == {TENANT}
    assert [t.due_at for t in units.store.timers.values()] == [T0 + timedelta(hours=6)]
    assert units.store.pins == {(TENANT, "INC-1"): 1}

    # The same ticket reconciled again at the same instant: nothing new to publish.
    units.store.timers[(TENANT, "INC-1")] = DueTimer(TENANT, "INC-1", T0, EVENTS_DUE)
    assert await keeper.reconcile_due(limit=10, per_tenant=10, budget_seconds=60) == 1
    assert published(units.store) == events
    assert [t.due_at for t in units.store.timers.values()] == [T0 + timedelta(hours=6)]


async def test_a_round_that_fails_keeps_nothing_and_leaves_the_ticket_due(
    units: FakeUnits, keeper: ClockKeeper
) -> None:
    await keeper.on_ticket_records(ticket_records(ticket_event(TENANT, "INC-1", T0, event_id="e1")))

    class BrokenDueQueue(FakeDueQueue):
        """The round's last write fails, after its events, clocks and pins were written."""

        async def reschedule(self, timers: Any) -> None:
            raise ConnectionError("the database went away")

    class BrokenUnit(FakeUnitOfWork):
        def _open(self, work: FakeStore) -> None:
            super()._open(work)
            self.timers = BrokenDueQueue(work)

    failing = ClockKeeper(lambda: BrokenUnit(units), BundleCache(), Now(T0 + timedelta(hours=5)))
    try:
        with pytest.raises(ConnectionError):
            await failing.reconcile_due(limit=10, per_tenant=10, budget_seconds=60)
    finally:
        failing.close()
    assert not units.made[-1].committed
    assert (units.store.outbox, units.store.emitted, units.store.clocks, units.store.pins) == ([], {}, {}, {})
    assert units.store.timers == {(TENANT, "INC-1"): DueTimer(TENANT, "INC-1", T0 + timedelta(hours=5), EVENTS_DUE)}


def measurement(end: datetime, good: int, total: int, event_id: str) -> ConsumerRecord[bytes, bytes]:
    event = {
        "specversion": "1.0",
        "id": event_id,
        "source": "probe://test",
        "type": "itsm.measurement.v1",
        "time": end.isoformat(),
        "tenantid": TENANT,
        "subject": "api",
        "data": {
            "service": "api",
            "sli": "requests",
            "window_start": (end - timedelta(minutes=1)).isoformat(),
            "window_end": end.isoformat(),
            "good": good,
            "total": total,
        },
    }
    value = json.dumps(event).encode()
    return ConsumerRecord(topics.SIGNALS, 0, 0, 0, 0, None, value, None, 0, len(value), [])


async def test_a_measurement_publishes_its_slos_status_once() -> None:
    units = FakeUnits(FakeStore(versions={TENANT: [SLO_BUNDLE]}))
    now = datetime(2026, 11, 10, 12, tzinfo=UTC)
    keeper = SloKeeper(units, BundleCache(), Now(now), status_interval_seconds=0)
    signal = measurement(now - timedelta(minutes=1), 999, 1_000, f"m-{uuid.uuid4().hex}")

    assert await keeper.on_signal_records([signal]) == ["applied"]
    assert units.made[-1].committed
    statuses = [e for e in published(units.store) if e["type"] == "slo.status.v1"]
    assert len(statuses) == 1
    data = statuses[0]["data"]
    # 999 good of 1,000: 99.9 %; the budget is 0.1 % of 1,000 events, 1 event, all of it consumed.
    assert (data["slo_id"], data["good"], data["total"], data["objective"]) == ("api-success", 999, 1_000, 99.9)
    assert data["sli_value"] == pytest.approx(99.9)
    assert (data["error_budget_total"], data["error_budget_remaining"]) == (pytest.approx(1.0), pytest.approx(0.0))

    before = list(units.store.outbox)
    assert await keeper.on_signal_records([signal]) == ["duplicate"]  # a redelivery adds and publishes nothing
    assert units.store.outbox == before
    # The window ends on 11:59:00, a minute boundary: it is the minute before, from 11:58.
    assert units.store.ratio_minutes[(TENANT, "api", "requests")] == {now - timedelta(minutes=2): (999, 1_000)}
