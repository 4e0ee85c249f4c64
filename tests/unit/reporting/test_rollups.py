"""The read-model decisions of reporting.domain.rollups on their own: closed periods an instant falls in, the
hour of the data notes' counters, and a late ticket snapshot judged against the timeline it lands in."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from reporting.domain.rollups import Deltas, hour_floor, judge_tickets, periods_holding
from reporting.domain.tickets import Snapshot, volume_transitions
from slm_shared.events import TicketSnapshotData
from tests.integration.reporting.events import ticket_event


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 10, day, hour, tzinfo=UTC)


def test_an_instant_belongs_to_the_closed_period_holding_it_end_excluded() -> None:
    closed = [(at(1), at(6)), (at(6), at(11))]
    assert periods_holding(closed, [at(5, 23), at(7)]) == [at(1), at(6)]
    assert periods_holding(closed, [at(6)]) == [at(6)]
    assert periods_holding(closed, [at(11)]) == []


def test_counters_fall_in_the_utc_hour_of_event_time() -> None:
    shanghai = timezone(timedelta(hours=8))
    assert hour_floor(datetime(2026, 10, 5, 9, 59, 59, tzinfo=shanghai)) == at(5, 1)


def test_a_snapshot_arriving_after_a_later_one_is_out_of_order_and_moves_only_what_it_changes() -> None:
    tenant, ticket = "t1", "T-7"
    resolved = Snapshot(at(6, 8), 1, "e-resolved", "updated", "resolved", "P3", "email", "acme", "incident")
    late = ticket_event(tenant, ticket, at(5, 8), "created", "new", priority="P3")
    data = TicketSnapshotData.model_validate(late.data)
    created = Snapshot(at(5, 8), 2, late.id, "created", "new", "P3", "email", "acme", "incident")
    deltas = Deltas()

    # The resolving snapshot alone made the ticket created and resolved on the 6th; the late creation moves the
    # creation to the 5th (the backlog holds it overnight), the resolution stays.
    stored = {(tenant, ticket): volume_transitions([resolved])}
    effects, transitions = judge_tickets(
        deltas, [(late, data)], [2], {(tenant, ticket): [(2, created), (1, resolved)]}, stored
    )

    [effect] = effects
    assert effect.out_of_order
    assert effect.changed_at == (at(5, 8), at(6, 8))
    assert [(t.kind, t.at) for t in transitions[(tenant, ticket)]] == [("created", at(5, 8)), ("resolved", at(6, 8))]
    assert deltas.ticket_daily == {
        (tenant, date(2026, 10, 5), "email", "acme", "P3"): [1, 0, 0, 0, 1],
        (tenant, date(2026, 10, 6), "email", "acme", "P3"): [-1, 0, 0, 0, -1],
    }
