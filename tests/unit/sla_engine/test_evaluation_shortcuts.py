"""The evaluation's two shortcuts give exactly what the plain evaluation gives, over random bundles and timelines.

- The policy index: a snapshot's candidates include every policy that matches it, and running a policy's
  metrics only from its first candidate snapshot gives the clocks of running every metric on every snapshot.
- One evaluation per reconciliation: each new transition's payload equals the transition's cycle evaluated
  again up to the transition's instant (what `reconciliation._clock_at` did, kept here as the reference).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.engine_scale.workload import last_event_time, make_bundle, make_tickets
from sla_engine.clocks.publication import clock_events, clock_payload
from sla_engine.domain.bundle import Bundle, parse_bundle
from sla_engine.domain.clocks import Clock, Transition, evaluate_ticket, evaluate_timeline
from sla_engine.domain.cycles import MetricRun
from sla_engine.domain.reconciliation import ConfigRef, TicketState, cycle_of, reconcile_ticket
from sla_engine.domain.timeline import TICKET_ACTIONS, TICKET_STATUSES, TicketSnapshot, ordered_timeline
from slm_shared.business_time import to_epoch
from slm_shared.events import ClockTransitionData
from tests.unit.sla_engine.builders import CN_HOURS, utc

START = utc("2026-09-30 01:00")  # Wednesday 09:00 in Shanghai, the day before the National Day holidays
CUSTOMERS = ("acme", "globex", "initech")
SERVICES = ("email", "vpn")
GROUPS = ("desk", "network", None)
REGIONS = ("apac", "emea")
CALENDARS = [
    {
        "name": "cn",
        "timezone": "Asia/Shanghai",
        "hours": CN_HOURS,
        "holidays": {"country": "CN"},
        "extra_workdays": {"2026-10-10": "mon"},
    }
]


# -- references: the plain evaluation and the per-transition re-evaluation --------------------------------


def every_policy_on_every_snapshot(timeline: list[TicketSnapshot], bundle: Bundle, at: datetime) -> list[Clock]:
    """`evaluate_ticket` without the index: every metric of every policy is fed every snapshot."""
    snapshots = [s for s in ordered_timeline(timeline) if s.time <= at]
    if not snapshots:
        return []
    runs = [
        (MetricRun(policy, rule, bundle.calendar(rule.calendar), []), rule)
        for policy in bundle.policies
        for rule in policy.metrics
    ]
    for snapshot in snapshots:
        for run, _ in runs:
            run.seen.append(snapshot)
            run.feed(snapshot, to_epoch(snapshot.time))
    return [
        clock
        for run, _ in runs
        for clock in run.finish(to_epoch(at), ticket_id=snapshots[0].ticket_id, policy_version=1)
    ]


def clock_at_by_reevaluation(
    timeline: list[TicketSnapshot], bundle: Bundle, clock: Clock, transition: Transition
) -> Clock:
    """The old `reconciliation._clock_at`: the cycle in a new evaluation up to the transition's instant."""
    for candidate in evaluate_ticket(timeline, bundle, policy_version=1, at=transition.at):
        if cycle_of(candidate) == cycle_of(clock):
            return candidate
    return clock


# -- random bundles and timelines ------------------------------------------------------------------------


@st.composite
def matches(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(
        st.lists(
            st.sampled_from(["kind", "customer", "service", "priority", "assignment_group", "attributes.region"]),
            max_size=3,
            unique=True,
        )
    )
    pools: dict[str, tuple[str, ...]] = {
        "kind": ("incident", "change"),
        "customer": CUSTOMERS,
        "service": SERVICES,
        "priority": ("P1", "P2", "P3"),
        "assignment_group": ("desk", "network"),
        "attributes.region": REGIONS,
    }
    return {key: draw(st.lists(st.sampled_from(pools[key]), min_size=1, max_size=2, unique=True)) for key in keys}


@st.composite
def metrics(draw: st.DrawFn, name: str) -> dict[str, Any]:
    pause = draw(st.sampled_from([[], ["pending_customer"], ["pending_customer", "on_hold"]]))
    rule: dict[str, Any] = {
        "metric": name,
        "calendar": draw(st.sampled_from(["24x7", "cn"])),
        "targets": draw(st.sampled_from([{"P1": "1h", "P2": "4h"}, {"P1": "30m", "P2": "2h", "P3": "1d"}])),
        "pause": {"statuses": pause},
        "stop": {"actions": draw(st.sampled_from([[], ["agent_replied"]])), "statuses": ["resolved", "closed"]},
        "cancel": {"statuses": draw(st.sampled_from([[], ["cancelled"]]))},
        "on_reopen": draw(st.sampled_from(["ignore", "resume", "new_cycle"])),
        "warn_at": draw(st.sampled_from([[], [50], [50, 90]])),
    }
    if draw(st.booleans()):
        rule["start"] = {"retroactive": True}
    return rule


@st.composite
def bundles(draw: st.DrawFn) -> Bundle:
    count = draw(st.integers(1, 6))
    policies = [
        {
            "id": f"p{n}",
            "agreement": "SLA",
            "match": draw(matches()),
            "metrics": [
                draw(metrics(name)) for name in draw(st.sampled_from([["resolution"], ["response", "resolution"]]))
            ],
        }
        for n in range(count)
    ]
    return parse_bundle(yaml.safe_dump({"calendars": CALENDARS, "policies": policies}))


@st.composite
def snapshots(
    draw: st.DrawFn, event_id: str = "e0", time: datetime = START, arrival: int = 0, action: str | None = None
) -> TicketSnapshot:
    return TicketSnapshot(
        event_id=event_id,
        time=time,
        arrival=arrival,
        ticket_id="INC-1",
        action=action or draw(st.sampled_from(TICKET_ACTIONS[1:])),
        kind=draw(st.sampled_from(["incident", "incident", "change"])),
        status=draw(st.sampled_from(TICKET_STATUSES)),
        priority=draw(st.sampled_from(["P1", "P2", "P2", "P3", "P4"])),
        service=draw(st.sampled_from(SERVICES)),
        customer=draw(st.sampled_from(CUSTOMERS)),
        assignment_group=draw(st.sampled_from(GROUPS)),
        assignee=None,
        attributes=draw(st.sampled_from([{}, {"region": "apac"}, {"region": "emea"}, {"region": 7}])),
    )


@st.composite
def timelines(draw: st.DrawFn) -> list[TicketSnapshot]:
    """Up to ten snapshots over a week (ties included), arriving in a random order; fields change on the way."""
    count = draw(st.integers(1, 10))
    offsets = sorted(draw(st.lists(st.integers(0, 7 * 24 * 60), min_size=count, max_size=count)))
    arrivals = draw(st.permutations(range(count)))
    return [
        draw(snapshots(f"e{n}", START + timedelta(minutes=minutes), arrivals[n], "created" if n == 0 else None))
        for n, minutes in enumerate(offsets)
    ]


# -- the policy index ------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(bundles(), st.lists(snapshots(), min_size=1, max_size=5))
def test_a_snapshots_candidates_include_every_policy_that_matches_it(
    bundle: Bundle, tried: list[TicketSnapshot]
) -> None:
    for snapshot in tried:
        candidates = bundle.policy_index.candidates(snapshot)
        matching = {n for n, policy in enumerate(bundle.policies) if policy.matches(snapshot)}
        assert matching <= set(candidates)
        assert len(candidates) == len(set(candidates))


def test_the_index_leaves_out_the_policies_meant_for_other_tickets() -> None:
    bundle = make_bundle(100)
    ticket = make_tickets(1, policies=1)[0]
    assert {n for s in ticket.snapshots for n in bundle.policy_index.candidates(s)} <= {0}


@settings(max_examples=150, deadline=None)
@given(bundles(), timelines(), st.integers(0, 9 * 24 * 60))
def test_running_policies_from_their_first_candidate_snapshot_gives_the_plain_result(
    bundle: Bundle, timeline: list[TicketSnapshot], minutes: int
) -> None:
    at = START + timedelta(minutes=minutes)
    assert evaluate_ticket(timeline, bundle, policy_version=1, at=at) == every_policy_on_every_snapshot(
        timeline, bundle, at
    )


def test_workload_tickets_give_the_plain_result_with_a_hundred_policies() -> None:
    bundle = make_bundle(100)
    for ticket in make_tickets(40, policies=100, seed=3):
        at = last_event_time(ticket) + timedelta(hours=6)
        assert evaluate_ticket(ticket.snapshots, bundle, policy_version=1, at=at) == every_policy_on_every_snapshot(
            list(ticket.snapshots), bundle, at
        )


# -- one evaluation per reconciliation -------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(bundles(), timelines(), st.integers(0, 9 * 24 * 60))
def test_each_transitions_clock_at_its_instant_equals_a_reevaluation_up_to_it(
    bundle: Bundle, timeline: list[TicketSnapshot], minutes: int
) -> None:
    at = START + timedelta(minutes=minutes)
    evaluation = evaluate_timeline(timeline, bundle, policy_version=1, at=at, watch=lambda _: True)
    for clock in evaluation.clocks:
        for transition in clock.transitions:
            assert evaluation.clock_when(transition) == clock_at_by_reevaluation(timeline, bundle, clock, transition)


@settings(max_examples=100, deadline=None)
@given(bundles(), timelines(), st.integers(0, 9 * 24 * 60), st.data())
def test_reconciliation_payloads_equal_the_per_transition_reevaluation(
    bundle: Bundle, timeline: list[TicketSnapshot], minutes: int, data: st.DataObject
) -> None:
    now = START + timedelta(minutes=minutes)
    clocks = evaluate_ticket(timeline, bundle, policy_version=1, at=now)
    keys = [t.key for c in clocks for t in c.transitions]
    published = data.draw(st.sets(st.sampled_from(keys))) if keys else set()
    state = TicketState("acme", "INC-1", timeline=timeline, config=ConfigRef(1, bundle), emitted=published)
    result = reconcile_ticket(state, now)
    by_cycle = {cycle_of(c): c for c in clocks}
    new = sorted((t for c in clocks for t in c.transitions if t.key not in published), key=lambda t: (t.at, t.cycle))
    expected = [
        clock_payload(clock_at_by_reevaluation(timeline, bundle, by_cycle[cycle_of(t)], t), t.transition, t.threshold)
        for t in new
    ]
    # New transitions come first; a `recalculated` restating a stopped cycle may follow, and each event's
    # `sequence` numbers the cycle's events (tested with the sequences), not the payload compared here.
    payloads = [
        ClockTransitionData.model_validate(event.event.data).model_copy(update={"sequence": None})
        for event in clock_events(result)
    ]
    assert payloads[: len(expected)] == expected
    assert all(payload.transition == "recalculated" for payload in payloads[len(expected) :])
    assert result.published == [t.key for c in clocks for t in c.transitions if t.key not in published]
