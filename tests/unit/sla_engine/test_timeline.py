"""A timeline is ordered by event time, ties by arrival, with redelivered snapshots counted once."""

from __future__ import annotations

from datetime import datetime

import pytest

from sla_engine.domain.timeline import TicketSnapshot, ordered_timeline
from tests.unit.sla_engine.builders import snap, utc


def test_snapshots_are_ordered_by_event_time_not_arrival() -> None:
    late = snap("e2", utc("2026-11-02 10:00"), arrival=1)
    early = snap("e1", utc("2026-11-02 09:00"), arrival=2)
    assert [s.event_id for s in ordered_timeline([late, early])] == ["e1", "e2"]


def test_equal_times_keep_arrival_order() -> None:
    second = snap("b", utc("2026-11-02 09:00"), arrival=7)
    first = snap("a", utc("2026-11-02 09:00"), arrival=3)
    assert [s.event_id for s in ordered_timeline([second, first])] == ["a", "b"]


def test_a_redelivered_event_counts_once_and_its_first_arrival_wins() -> None:
    first = snap("e1", utc("2026-11-02 09:00"), status="open", arrival=1)
    again = snap("e1", utc("2026-11-02 09:00"), status="open", arrival=5)
    other = snap("e2", utc("2026-11-02 08:00"), arrival=3)
    timeline = ordered_timeline([again, other, first])
    assert [(s.event_id, s.arrival) for s in timeline] == [("e2", 3), ("e1", 1)]


def test_offsets_do_not_matter_only_instants() -> None:
    shanghai = snap("a", datetime.fromisoformat("2026-11-02T17:00:00+08:00"), arrival=2)
    london = snap("b", utc("2026-11-02 08:30"), arrival=1)
    assert [s.event_id for s in ordered_timeline([shanghai, london])] == ["b", "a"]


def test_a_naive_event_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        TicketSnapshot(
            event_id="e",
            time=datetime(2026, 11, 2, 9),  # noqa: DTZ001
            arrival=0,
            ticket_id="T",
            action="created",
            kind="incident",
            status="new",
            priority="P2",
            service="s",
            customer="c",
        )


def test_match_fields_include_attributes_as_text() -> None:
    snapshot = TicketSnapshot(
        event_id="e",
        time=utc("2026-11-02 09:00"),
        arrival=0,
        ticket_id="T",
        action="created",
        kind="incident",
        status="new",
        priority="P2",
        service="email",
        customer="acme",
        attributes={"channel": "portal", "vip": True},
    )
    assert snapshot.field_value("service") == "email"
    assert snapshot.field_value("attributes.channel") == "portal"
    assert snapshot.field_value("attributes.vip") == "True"
    assert snapshot.field_value("attributes.missing") is None
    assert snapshot.field_value("assignee") is None
