"""Properties of the clock engine over random timelines.

- Delivery order and redelivery do not matter: the result equals the in-order, once-only result.
- Clocks at an earlier instant are a prefix of the later ones: every transition up to that instant is already
  known then, including the warnings and breaches no event announced (what durable timers rely on).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from sla_engine.domain.bundle import Bundle
from sla_engine.domain.timeline import TICKET_ACTIONS, TICKET_STATUSES, TicketSnapshot
from tests.unit.sla_engine.builders import CN_HOURS, clocks_at, make_bundle, snap, utc

START = utc("2026-11-06 01:00")  # Friday 09:00 in Shanghai
BUNDLES = {
    (calendar, on_reopen): make_bundle(
        calendar=calendar,
        calendars=[{"name": "cn", "timezone": "Asia/Shanghai", "hours": CN_HOURS}],
        targets={"P1": "2h", "P2": "8h"},
        warn_at=[50, 90],
        on_reopen=on_reopen,
        stop_actions=["agent_replied"],
        match={"kind": "incident"},
    )
    for calendar in ("24x7", "cn")
    for on_reopen in ("ignore", "resume", "new_cycle")
}


@st.composite
def timelines(draw: st.DrawFn) -> list[TicketSnapshot]:
    """Up to nine snapshots over a few days, ties included, in event-time order."""
    count = draw(st.integers(1, 9))
    offsets = sorted(draw(st.lists(st.integers(0, 4 * 24 * 60), min_size=count, max_size=count)))
    snapshots = []
    for position, minutes in enumerate(offsets):
        snapshots.append(
            snap(
                f"e{position}",
                START + timedelta(minutes=minutes),
                "created" if position == 0 else draw(st.sampled_from(TICKET_ACTIONS[1:])),
                draw(st.sampled_from(TICKET_STATUSES)),
                draw(st.sampled_from(["P1", "P2", "P2", "P5"])),
                kind=draw(st.sampled_from(["incident", "incident", "incident", "change"])),
                arrival=position,
            )
        )
    return snapshots


bundles = st.sampled_from(sorted(BUNDLES)).map(BUNDLES.__getitem__)


def redelivered(snapshots: list[TicketSnapshot], order: list[int], repeats: list[int]) -> list[TicketSnapshot]:
    """The same events arriving in `order`, then `repeats` delivered again later."""
    arrivals = [snapshots[i] for i in order] + [snapshots[i % len(snapshots)] for i in repeats]
    return [TicketSnapshot(**{**vars(s), "arrival": arrival}) for arrival, s in enumerate(arrivals)]


@settings(max_examples=300, deadline=None)
@given(timelines(), bundles, st.data())
def test_out_of_order_and_duplicate_delivery_gives_the_in_order_result(
    snapshots: list[TicketSnapshot], bundle: Bundle, data: st.DataObject
) -> None:
    order = keep_ties_in_order(snapshots, data.draw(st.permutations(range(len(snapshots)))))
    repeats = data.draw(st.lists(st.integers(0, 20), max_size=3))
    at = snapshots[-1].time + timedelta(days=3)
    assert clocks_at(redelivered(snapshots, order, repeats), bundle, at) == clocks_at(snapshots, bundle, at)


def keep_ties_in_order(snapshots: list[TicketSnapshot], order: list[int]) -> list[int]:
    """Snapshots with equal event times are ordered by arrival, so a shuffle must keep their relative order."""
    groups: dict[datetime, list[int]] = defaultdict(list)
    for index in order:
        groups[snapshots[index].time].append(index)
    queues = {time: iter(sorted(members)) for time, members in groups.items()}
    return [next(queues[snapshots[index].time]) for index in order]


@settings(max_examples=300, deadline=None)
@given(timelines(), bundles, st.integers(0, 6 * 24 * 60))
def test_clocks_at_an_earlier_instant_are_a_prefix_of_the_later_ones(
    snapshots: list[TicketSnapshot], bundle: Bundle, minutes: int
) -> None:
    early = START + timedelta(minutes=minutes)
    late = snapshots[-1].time + timedelta(days=3)
    earlier = {(c.policy_id, c.metric, c.cycle): c for c in clocks_at(snapshots, bundle, early)}
    later = {(c.policy_id, c.metric, c.cycle): c for c in clocks_at(snapshots, bundle, max(early, late))}
    assert earlier.keys() <= later.keys()
    for key, clock in earlier.items():
        assert clock.transitions == tuple(t for t in later[key].transitions if t.at <= early)
        assert clock.started_at == later[key].started_at


@settings(max_examples=200, deadline=None)
@given(timelines(), bundles, st.integers(0, 6 * 24 * 60))
def test_reported_numbers_are_consistent(snapshots: list[TicketSnapshot], bundle: Bundle, minutes: int) -> None:
    at: datetime = START + timedelta(minutes=minutes)
    for clock in clocks_at(snapshots, bundle, at):
        assert clock.remaining_seconds == clock.target_seconds - clock.elapsed_seconds
        assert clock.percent == round(100 * clock.elapsed_seconds / clock.target_seconds, 2)
        assert clock.breached == (clock.breached_at is not None)
        # A breach under a tighter target keeps a deadline once a looser one is in force (DESIGN 4.9).
        assert (clock.due_at is not None) == (clock.state == "running" and clock.elapsed_seconds < clock.target_seconds)
        assert (clock.stopped_at is None) == (clock.state in {"running", "paused"})
        assert [t.at for t in clock.transitions] == sorted(t.at for t in clock.transitions)
        assert all(t.at <= at for t in clock.transitions)
        assert clock.explanation[-1].elapsed_at_end == clock.elapsed_seconds
        assert sum(s.business_seconds for s in clock.explanation) == clock.elapsed_seconds
        if clock.state == "cancelled":
            assert not clock.breached
        if clock.state == "met":
            assert clock.breached_at is None
