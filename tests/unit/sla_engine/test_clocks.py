"""Each clock rule of DESIGN.md section 4, with hand-computed expectations.

Unless a test says otherwise the calendar is 24x7, targets are P1 1h, P2 8h, P3 1d (24h), and times are UTC on
Monday 2 November 2026 (`T("09:30")`; `T("10:00", day=3)` is the next day).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sla_engine.domain.bundle import parse_bundle
from sla_engine.domain.clocks import Clock, diff_transitions, evaluate_ticket, next_timer_at
from sla_engine.domain.results import TransitionKey
from sla_engine.domain.timeline import TicketSnapshot
from tests.unit.sla_engine.builders import (
    CN_HOURS,
    clocks_at,
    local,
    make_bundle,
    only_clock,
    snap,
    transitions,
    utc,
)

H = 3600
SH = "Asia/Shanghai"
NY = "America/New_York"
BERLIN = "Europe/Berlin"
CN_CALENDAR = {"name": "cn", "timezone": SH, "hours": CN_HOURS}


def T(hhmm: str, day: int = 2) -> datetime:  # noqa: N802 - reads like a time literal
    return utc(f"2026-11-{day:02d} {hhmm}")


def stamp(hhmm: str, day: int = 2) -> str:
    return f"2026-11-{day:02d} {hhmm}:00" if hhmm.count(":") == 1 else f"2026-11-{day:02d} {hhmm}"


# -- start ------------------------------------------------------------------------------------------------

START_CASES = [
    (
        "the first snapshot where the policy matches",
        [snap("e1", T("08:00"), "created", customer="other"), snap("e2", T("09:00"), customer="acme")],
        T("09:00"),
    ),
    (
        "the first snapshot whose priority has a target",
        [snap("e1", T("08:00"), "created", priority="P5"), snap("e2", T("10:00"), priority="P2")],
        T("10:00"),
    ),
    (
        "not while a stop status holds, but once it no longer does",
        [snap("e1", T("08:00"), "created", status="resolved"), snap("e2", T("09:00"), status="in_progress")],
        T("09:00"),
    ),
    ("never while a cancel status holds", [snap("e1", T("08:00"), "created", status="cancelled")], None),
    ("never when the policy never matches", [snap("e1", T("08:00"), "created", kind="change")], None),
]


@pytest.mark.parametrize(("events", "started_at"), [c[1:] for c in START_CASES], ids=[c[0] for c in START_CASES])
def test_a_clock_starts_where_the_start_rule_first_holds(
    events: list[TicketSnapshot], started_at: datetime | None
) -> None:
    clocks = clocks_at(events, make_bundle(), T("12:00"))
    assert [c.started_at for c in clocks] == ([started_at] if started_at else [])


def test_a_clock_created_in_a_pause_status_starts_paused() -> None:
    clock = only_clock(
        [snap("e1", T("08:00"), "created", status="pending_vendor"), snap("e2", T("09:00"), status="open")],
        make_bundle(),
        T("10:00"),
    )
    assert transitions(clock) == [
        ("started", stamp("08:00"), None),
        ("paused", stamp("08:00"), None),
        ("resumed", stamp("09:00"), None),
    ]
    assert clock.elapsed_seconds == H


# -- retroactive start ------------------------------------------------------------------------------------

RECATEGORISED = [snap("e1", T("08:00"), "created", kind="change"), snap("e2", T("10:00"), kind="incident")]


@pytest.mark.parametrize(("retroactive", "started_at", "elapsed"), [(True, T("08:00"), 3 * H), (False, T("10:00"), H)])
def test_a_retroactive_start_counts_from_the_created_event(
    retroactive: bool, started_at: datetime, elapsed: int
) -> None:
    clock = only_clock(RECATEGORISED, make_bundle(retroactive=retroactive), T("11:00"))
    assert (clock.started_at, clock.elapsed_seconds) == (started_at, elapsed)


def test_a_retroactive_start_applies_the_pause_rule_since_creation() -> None:
    events = [
        snap("e1", T("08:00"), "created", kind="change"),
        snap("e2", T("09:00"), status="pending_customer", kind="change"),
        snap("e3", T("09:30"), status="open", kind="change"),
        snap("e4", T("10:00"), kind="incident"),
    ]
    clock = only_clock(events, make_bundle(retroactive=True), T("11:00"))
    assert clock.elapsed_seconds == H + 90 * 60
    assert transitions(clock) == [
        ("started", stamp("08:00"), None),
        ("paused", stamp("09:00"), None),
        ("resumed", stamp("09:30"), None),
    ]


def test_a_retroactive_start_can_reveal_a_breach_in_the_past() -> None:
    events = [
        snap("e1", T("08:00"), "created", kind="change", priority="P1"),
        snap("e2", T("10:00"), kind="incident", priority="P1"),
    ]
    clock = only_clock(events, make_bundle(retroactive=True), T("10:30"))
    assert transitions(clock) == [("started", stamp("08:00"), None), ("breached", stamp("09:00"), None)]
    assert clock.transitions[1].event_id is None
    assert (clock.breached, clock.elapsed_seconds) == (True, 150 * 60)


def test_a_retroactive_start_applies_only_to_the_first_cycle() -> None:
    events = [
        snap("e1", T("08:00"), "created"),
        snap("e2", T("09:00"), priority="P5"),
        snap("e3", T("10:00"), priority="P2"),
    ]
    first, second = clocks_at(events, make_bundle(retroactive=True), T("12:00"))
    assert (first.state, first.started_at) == ("cancelled", T("08:00"))
    assert (second.cycle, second.started_at, second.elapsed_seconds) == (2, T("10:00"), 2 * H)


# -- pause ------------------------------------------------------------------------------------------------

PAUSED = [
    snap("e1", T("08:00"), "created"),
    snap("e2", T("09:00"), "customer_replied", "pending_customer"),
    snap("e3", T("11:00"), "customer_replied", "in_progress"),
]


def test_pause_statuses_stop_elapsed_time_from_growing() -> None:
    clock = only_clock(PAUSED, make_bundle(), T("12:00"))
    assert (clock.state, clock.elapsed_seconds, clock.remaining_seconds) == ("running", 2 * H, 6 * H)
    assert clock.due_at == T("18:00")  # six hours left from 12:00
    assert transitions(clock) == [
        ("started", stamp("08:00"), None),
        ("paused", stamp("09:00"), None),
        ("resumed", stamp("11:00"), None),
    ]


def test_a_paused_clock_has_no_deadline_and_no_timer() -> None:
    clock = only_clock(PAUSED, make_bundle(), T("10:00"))
    assert (clock.state, clock.elapsed_seconds, clock.due_at) == ("paused", H, None)
    assert clock.next_due_transition(T("10:00")) is None
    assert clock.percent == 12.5


# -- stop -------------------------------------------------------------------------------------------------


def test_a_stop_action_stops_the_clock_as_met() -> None:
    events = [snap("e1", T("08:00"), "created"), snap("e2", T("08:20"), "agent_replied", "open")]
    clock = only_clock(events, make_bundle(metric="response", stop_actions=["agent_replied"]), T("12:00"))
    assert (clock.state, clock.breached, clock.elapsed_seconds, clock.stopped_at) == ("met", False, 1200, T("08:20"))
    assert clock.stop_reason == "action agent_replied is in stop.actions"


def test_a_stop_status_stops_the_clock_as_met() -> None:
    events = [snap("e1", T("08:00"), "created"), snap("e2", T("10:00"), "resolved", "resolved")]
    clock = only_clock(events, make_bundle(), T("12:00"))
    assert (clock.state, clock.elapsed_seconds, clock.stopped_at, clock.due_at) == ("met", 2 * H, T("10:00"), None)


STOP_AT_DEADLINE_CASES = [
    ("exactly at the deadline is met", T("09:00"), "met", None, ["started", "met"]),
    (
        "one second later is breached",
        T("09:00:01"),
        "breached",
        T("09:00"),
        ["started", "breached", "stopped_breached"],
    ),
]


@pytest.mark.parametrize(
    ("stop", "state", "breached_at", "names"),
    [c[1:] for c in STOP_AT_DEADLINE_CASES],
    ids=[c[0] for c in STOP_AT_DEADLINE_CASES],
)
def test_stopping_at_the_deadline(stop: datetime, state: str, breached_at: datetime | None, names: list[str]) -> None:
    events = [snap("e1", T("08:00"), "created", priority="P1"), snap("e2", stop, "resolved", "resolved", "P1")]
    clock = only_clock(events, make_bundle(), T("12:00"))
    assert (clock.state, clock.breached, clock.breached_at) == (state, breached_at is not None, breached_at)
    assert [t.transition for t in clock.transitions] == names


def test_pausing_exactly_at_the_deadline_is_a_breach_at_that_instant() -> None:
    # Only a stop at the deadline is met (rule 3); a pause leaves elapsed at the target, which is a breach.
    events = [
        snap("e1", T("08:00"), "created", priority="P1"),
        snap("e2", T("09:00"), "customer_replied", "pending_customer", "P1"),
    ]
    clock = only_clock(events, make_bundle(), T("10:00"))
    assert (clock.state, clock.breached, clock.breached_at) == ("paused", True, T("09:00"))
    assert [(t.transition, t.event_id) for t in clock.transitions] == [
        ("started", "e1"),
        ("paused", "e2"),
        ("breached", "e2"),
    ]


def test_a_downgrade_at_the_deadline_instant_sets_the_target_in_force_at_that_instant() -> None:
    events = [snap("e1", T("08:00"), "created", priority="P1"), snap("e2", T("09:00"), priority="P3")]
    clock = only_clock(events, make_bundle(), T("10:00"))
    assert (clock.breached, clock.target_seconds, clock.due_at) == (False, 24 * H, T("08:00", day=3))


def test_the_breach_fires_at_the_crossing_instant_without_any_event() -> None:
    events = [snap("e1", T("08:00"), "created", priority="P1")]
    before = only_clock(events, make_bundle(), T("08:59:59"))
    assert (before.breached, before.due_at) == (False, T("09:00"))
    assert before.next_due_transition(T("08:59:59")) == ("breached", T("09:00"), None)
    at_deadline = only_clock(events, make_bundle(), T("09:00"))
    assert (at_deadline.state, at_deadline.breached, at_deadline.due_at) == ("running", True, None)
    assert transitions(at_deadline)[-1] == ("breached", stamp("09:00"), None)
    assert at_deadline.next_due_transition(T("09:00")) is None


def test_clocks_are_as_they_stood_at_the_instant_asked() -> None:
    events = [snap("e1", T("08:00"), "created"), snap("e2", T("10:00"), "resolved", "resolved")]
    clock = only_clock(events, make_bundle(), T("09:00"))
    assert (clock.state, clock.elapsed_seconds, clock.stopped_at, clock.due_at) == ("running", H, None, T("16:00"))
    assert clocks_at(events, make_bundle(), T("07:59")) == []


# -- cancel -----------------------------------------------------------------------------------------------

CANCEL_CASES = [
    ("a cancel status", snap("e2", T("09:00"), "cancelled", "cancelled"), "status cancelled is in cancel.statuses"),
    (
        "the policy no longer matching",
        snap("e2", T("09:00"), customer="globex"),
        "policy gold no longer matches (customer is globex, not acme)",
    ),
    ("a priority without a target", snap("e2", T("09:00"), priority="P5"), "priority P5 has no target"),
]


@pytest.mark.parametrize(("event", "reason"), [c[1:] for c in CANCEL_CASES], ids=[c[0] for c in CANCEL_CASES])
def test_a_cycle_is_cancelled_by(event: TicketSnapshot, reason: str) -> None:
    clock = only_clock([snap("e1", T("08:00"), "created"), event], make_bundle(), T("12:00"))
    assert (clock.state, clock.breached, clock.elapsed_seconds, clock.stopped_at) == ("cancelled", False, H, T("09:00"))
    assert clock.stop_reason == reason
    assert reason in clock.deadline_reason
    assert transitions(clock) == [("started", stamp("08:00"), None), ("cancelled", stamp("09:00"), None)]


def test_a_cancelled_cycle_counts_as_not_breached_even_after_its_breach() -> None:
    events = [snap("e1", T("08:00"), "created", priority="P1"), snap("e2", T("10:00"), "cancelled", "cancelled", "P1")]
    clock = only_clock(events, make_bundle(), T("12:00"))
    assert (clock.state, clock.breached, clock.breached_at) == ("cancelled", False, None)
    assert [t.transition for t in clock.transitions] == ["started", "breached", "cancelled"]


def test_a_new_cycle_starts_when_the_start_rule_holds_again_after_a_cancel() -> None:
    events = [
        snap("e1", T("08:00"), "created"),
        snap("e2", T("09:00"), priority="P5"),
        snap("e3", T("10:00"), priority="P2"),
    ]
    first, second = clocks_at(events, make_bundle(), T("12:00"))
    assert (first.cycle, first.state, first.elapsed_seconds) == (1, "cancelled", H)
    assert (second.cycle, second.state, second.started_at, second.elapsed_seconds) == (2, "running", T("10:00"), 2 * H)


# -- reopen -----------------------------------------------------------------------------------------------


def reopened_by(action: str, status: str) -> list[TicketSnapshot]:
    return [
        snap("e1", T("08:00"), "created"),
        snap("e2", T("10:00"), "resolved", "resolved"),
        snap("e3", T("10:00", day=3), action, status),
        snap("e4", T("13:00", day=3), "resolved", "resolved"),
    ]


REOPEN_CASES = [
    # Each case: its id, the on_reopen setting, the events, then the cycles expected as tuples of
    # cycle, state, elapsed, started and stopped.
    (
        "resume by action",
        "resume",
        reopened_by("reopened", "in_progress"),
        [(1, "met", 5 * H, T("08:00"), T("13:00", day=3))],
    ),
    (
        "resume by status change",
        "resume",
        reopened_by("updated", "in_progress"),
        [(1, "met", 5 * H, T("08:00"), T("13:00", day=3))],
    ),
    (
        "new cycle by action",
        "new_cycle",
        reopened_by("reopened", "in_progress"),
        [(1, "met", 2 * H, T("08:00"), T("10:00")), (2, "met", 3 * H, T("10:00", day=3), T("13:00", day=3))],
    ),
    (
        "new cycle by status change",
        "new_cycle",
        reopened_by("updated", "open"),
        [(1, "met", 2 * H, T("08:00"), T("10:00")), (2, "met", 3 * H, T("10:00", day=3), T("13:00", day=3))],
    ),
    ("ignore", "ignore", reopened_by("reopened", "in_progress"), [(1, "met", 2 * H, T("08:00"), T("10:00"))]),
    (
        "resolved to closed is no reopen",
        "resume",
        reopened_by("closed", "closed"),
        [(1, "met", 2 * H, T("08:00"), T("10:00"))],
    ),
]


@pytest.mark.parametrize(
    ("on_reopen", "events", "expected"), [c[1:] for c in REOPEN_CASES], ids=[c[0] for c in REOPEN_CASES]
)
def test_reopening(on_reopen: str, events: list[TicketSnapshot], expected: list[tuple[object, ...]]) -> None:
    clocks = clocks_at(events, make_bundle(on_reopen=on_reopen), T("00:00", day=4))
    assert [(c.cycle, c.state, c.elapsed_seconds, c.started_at, c.stopped_at) for c in clocks] == expected


def test_a_resumed_cycle_reports_resumed_and_its_second_stop() -> None:
    clock = only_clock(reopened_by("updated", "in_progress"), make_bundle(on_reopen="resume"), T("00:00", day=4))
    assert transitions(clock) == [
        ("started", stamp("08:00"), None),
        ("met", stamp("10:00"), None),
        ("resumed", stamp("10:00", 3), None),
        ("met", stamp("13:00", 3), None),
    ]
    assert [s.state for s in clock.explanation] == ["running", "stopped", "running"]


def test_a_cycle_stopped_by_an_action_is_reopened_only_by_the_reopened_action() -> None:
    events = [
        snap("e1", T("08:00"), "created"),
        snap("e2", T("08:30"), "agent_replied", "open"),
        snap("e3", T("09:00"), "updated", "in_progress"),
        snap("e4", T("10:00"), "reopened", "in_progress"),
    ]
    bundle = make_bundle(metric="response", stop_actions=["agent_replied"], on_reopen="resume")
    assert only_clock(events, bundle, T("09:30")).state == "met"
    clock = only_clock(events, bundle, T("11:00"))
    assert (clock.state, clock.elapsed_seconds) == ("running", 1800 + H)


def test_a_reopen_where_the_policy_no_longer_matches_leaves_the_cycle_stopped() -> None:
    events = [
        snap("e1", T("08:00"), "created"),
        snap("e2", T("10:00"), "resolved", "resolved"),
        snap("e3", T("11:00"), "reopened", "in_progress", customer="globex"),
    ]
    clock = only_clock(events, make_bundle(on_reopen="resume"), T("12:00"))
    assert (clock.state, clock.elapsed_seconds, clock.stopped_at) == ("met", 2 * H, T("10:00"))


def test_a_resumed_cycle_keeps_its_breach() -> None:
    events = [
        snap("e1", T("08:00"), "created", priority="P1"),
        snap("e2", T("10:00"), "resolved", "resolved", "P1"),
        snap("e3", T("11:00"), "reopened", "in_progress", "P1"),
        snap("e4", T("11:30"), "resolved", "resolved", "P1"),
    ]
    clock = only_clock(events, make_bundle(on_reopen="resume"), T("12:00"))
    assert (clock.state, clock.breached, clock.breached_at, clock.elapsed_seconds) == (
        "breached",
        True,
        T("09:00"),
        150 * 60,
    )
    assert [t.transition for t in clock.transitions] == [
        "started",
        "breached",
        "stopped_breached",
        "resumed",
        "stopped_breached",
    ]


# -- priority and target ----------------------------------------------------------------------------------

PRIORITY_CASES = [
    ("an upgrade pulls the deadline in", "P1", 4 * H, T("12:00")),
    ("a downgrade pushes it out", "P3", 24 * H, T("08:00", day=3)),
]


@pytest.mark.parametrize(
    ("priority", "target", "due_at"), [c[1:] for c in PRIORITY_CASES], ids=[c[0] for c in PRIORITY_CASES]
)
def test_a_priority_change_moves_the_deadline_and_keeps_elapsed(priority: str, target: int, due_at: datetime) -> None:
    bundle = make_bundle(targets={"P1": "4h", "P2": "8h", "P3": "1d"})
    events = [snap("e1", T("08:00"), "created", priority="P2"), snap("e2", T("10:00"), priority=priority)]
    clock = only_clock(events, bundle, T("11:00"))
    assert (clock.priority, clock.target_seconds, clock.elapsed_seconds, clock.due_at) == (
        priority,
        target,
        3 * H,
        due_at,
    )


def test_a_priority_change_moves_the_deadline_in_business_time() -> None:
    bundle = make_bundle(calendar="cn", calendars=[CN_CALENDAR], targets={"P1": "4h", "P2": "8h"})
    created = snap("e1", local(SH, "2026-11-09 09:00"), "created", priority="P2")
    assert only_clock([created], bundle, local(SH, "2026-11-09 09:30")).due_at == local(SH, "2026-11-09 18:00")
    upgraded = snap("e2", local(SH, "2026-11-09 10:00"), priority="P1")
    # 09:00-12:00 is three hours; the fourth ends at 14:00 after lunch.
    assert only_clock([created, upgraded], bundle, local(SH, "2026-11-09 10:30")).due_at == local(
        SH, "2026-11-09 14:00"
    )


def test_an_upgrade_past_the_new_target_breaches_at_the_upgrade() -> None:
    bundle = make_bundle(targets={"P1": "1h", "P3": "4h"})
    events = [snap("e1", T("08:00"), "created", priority="P3"), snap("e2", T("10:00"), priority="P1")]
    clock = only_clock(events, bundle, T("10:15"))
    assert (clock.breached_at, clock.transitions[-1].event_id) == (T("10:00"), "e2")


def test_a_looser_target_does_not_undo_a_breach() -> None:
    events = [snap("e1", T("08:00"), "created", priority="P1"), snap("e2", T("09:30"), priority="P3")]
    clock = only_clock(events, make_bundle(), T("10:00"))
    assert (clock.state, clock.breached, clock.breached_at, clock.target_seconds) == (
        "running",
        True,
        T("09:00"),
        24 * H,
    )
    # Below the new target it is due again where elapsed reaches it, 22h on (DESIGN 4.9; issue 11 item 6).
    assert (clock.elapsed_seconds, clock.remaining_seconds, clock.due_at) == (2 * H, 22 * H, T("08:00", day=3))
    assert [t.transition for t in clock.transitions] == ["started", "breached"]


# -- warnings ---------------------------------------------------------------------------------------------


def test_warnings_fire_at_their_crossing_instants() -> None:
    clock = only_clock([snap("e1", T("08:00"), "created")], make_bundle(warn_at=[75, 50]), T("14:30"))
    assert transitions(clock) == [
        ("started", stamp("08:00"), None),
        ("warning", stamp("12:00"), 50),
        ("warning", stamp("14:00"), 75),
    ]
    assert [t.elapsed_seconds for t in clock.transitions[1:]] == [4 * H, 6 * H]
    assert [t.event_id for t in clock.transitions[1:]] == [None, None]


def test_a_pause_moves_the_next_warning() -> None:
    events = [
        snap("e1", T("08:00"), "created"),
        snap("e2", T("13:00"), status="on_hold"),
        snap("e3", T("13:30"), status="open"),
    ]
    clock = only_clock(events, make_bundle(warn_at=[50, 75], pause=["on_hold"]), T("15:00"))
    assert [(n, at) for n, at, _ in transitions(clock) if n == "warning"] == [
        ("warning", stamp("12:00")),
        ("warning", stamp("14:30")),
    ]


def test_each_warning_fires_once_per_cycle() -> None:
    events = [
        snap("e1", T("08:00"), "created"),
        snap("e2", T("12:30"), priority="P3"),
        snap("e3", T("13:00"), priority="P2"),
    ]
    clock = only_clock(events, make_bundle(warn_at=[50]), T("14:00"))
    assert [t for t in transitions(clock) if t[0] == "warning"] == [("warning", stamp("12:00"), 50)]


def test_an_upgrade_fires_the_warnings_it_jumps_over_before_the_breach() -> None:
    bundle = make_bundle(targets={"P1": "4h", "P3": "1d"}, warn_at=[50, 75])
    events = [snap("e1", T("08:00"), "created", priority="P3"), snap("e2", T("12:00"), priority="P1")]
    clock = only_clock(events, bundle, T("12:30"))
    assert transitions(clock) == [
        ("started", stamp("08:00"), None),
        ("warning", stamp("12:00"), 50),
        ("warning", stamp("12:00"), 75),
        ("breached", stamp("12:00"), None),
    ]
    assert {t.event_id for t in clock.transitions[1:]} == {"e2"}


def test_a_warning_threshold_that_falls_between_seconds_rounds_up() -> None:
    clock = only_clock(
        [snap("e1", T("08:00"), "created")], make_bundle(targets={"P2": "90s"}, warn_at=[75]), T("09:00")
    )
    assert clock.transitions[1].at == T("08:00:08") + timedelta(minutes=1)  # 67.5 s -> 68 s


def test_no_warning_fires_after_the_breach() -> None:
    events = [snap("e1", T("08:00"), "created", priority="P1"), snap("e2", T("09:30"), priority="P3")]
    clock = only_clock(events, make_bundle(warn_at=[50]), T("23:00"))
    assert [t.transition for t in clock.transitions] == ["started", "warning", "breached"]


# -- calendars inside clocks ------------------------------------------------------------------------------

CALENDAR_CASES = [
    (
        "New York office hours across the fall-back weekend",
        {"name": "ny", "timezone": NY, "hours": {"mon-fri": ["08:00-17:00"]}},
        local(NY, "2026-10-30 13:00"),
        "8h",
        utc("2026-11-02 17:00"),
    ),
    (
        "New York office hours across the spring-forward weekend",
        {"name": "ny", "timezone": NY, "hours": {"mon-fri": ["08:00-17:00"]}},
        local(NY, "2026-03-06 13:00"),
        "8h",
        utc("2026-03-09 16:00"),
    ),
    (
        "Berlin office hours across the fall-back weekend",
        {"name": "de", "timezone": BERLIN, "hours": {"mon-fri": ["09:00-17:00"]}},
        local(BERLIN, "2026-10-23 13:00"),
        "8h",
        utc("2026-10-26 12:00"),
    ),
    (
        "national day from the holidays package",
        {**CN_CALENDAR, "holidays": {"country": "CN"}},
        local(SH, "2026-09-30 17:00"),
        "4h",
        local(SH, "2026-10-08 12:00"),
    ),
    (
        "a make-up saturday from extra_workdays",
        {**CN_CALENDAR, "holidays": {"country": "CN"}, "extra_workdays": {"2026-10-10": "fri"}},
        local(SH, "2026-10-09 17:00"),
        "4h",
        local(SH, "2026-10-10 12:00"),
    ),
    (
        "the same without the make-up day",
        {**CN_CALENDAR, "holidays": {"country": "CN"}},
        local(SH, "2026-10-09 17:00"),
        "4h",
        local(SH, "2026-10-12 12:00"),
    ),
    (
        "several intervals a day",
        {"name": "split", "timezone": SH, "hours": {"mon-fri": ["08:00-10:00", "11:00-12:30", "14:00-17:45"]}},
        local(SH, "2026-11-09 09:00"),
        "4h",
        local(SH, "2026-11-09 15:30"),
    ),
]


@pytest.mark.parametrize(
    ("calendar", "created", "target", "due_at"), [c[1:] for c in CALENDAR_CASES], ids=[c[0] for c in CALENDAR_CASES]
)
def test_the_deadline_follows_the_calendar(
    calendar: dict[str, object], created: datetime, target: str, due_at: datetime
) -> None:
    bundle = make_bundle(calendar=str(calendar["name"]), calendars=[calendar], targets={"P2": target})
    clock = only_clock([snap("e1", created, "created")], bundle, created + timedelta(minutes=1))
    assert clock.due_at == due_at
    assert only_clock([snap("e1", created, "created")], bundle, due_at).breached_at == due_at


def test_the_explanation_names_the_holidays_that_did_not_count() -> None:
    bundle = make_bundle(
        calendar="cn", calendars=[{**CN_CALENDAR, "holidays": {"country": "CN"}}], targets={"P2": "4h"}
    )
    clock = only_clock([snap("e1", local(SH, "2026-09-30 17:00"), "created")], bundle, local(SH, "2026-10-08 10:00"))
    (segment,) = clock.explanation
    assert (segment.state, segment.business_seconds, segment.event_id) == ("running", 2 * H, "e1")
    assert "holiday: National Day" in {span.reason for span in segment.non_working}
    assert "National Day" in clock.deadline_reason
    assert "due Thu 2026-10-08 12:00 +08:00" in clock.deadline_reason


def test_the_explanation_shows_each_running_and_paused_stretch_and_why() -> None:
    bundle = make_bundle(calendar="cn", calendars=[CN_CALENDAR], warn_at=[50])
    events = [
        snap("e1", local(SH, "2026-11-06 14:00"), "created"),
        snap("e2", local(SH, "2026-11-06 17:00"), "customer_replied", "pending_customer"),
        snap("e3", local(SH, "2026-11-09 10:00"), "customer_replied", "in_progress"),
    ]
    clock = only_clock(events, bundle, local(SH, "2026-11-09 10:30"))
    assert [(s.state, s.event_id, s.business_seconds) for s in clock.explanation] == [
        ("running", "e1", 3 * H),
        ("paused", "e2", 0),
        ("running", "e3", 1800),
    ]
    assert clock.explanation[1].condition == "status pending_customer is in pause.statuses"
    assert clock.explanation[2].condition == "status in_progress is not in pause.statuses"
    assert clock.explanation[-1].elapsed_at_end == clock.elapsed_seconds == 3 * H + 1800
    assert "due Mon 2026-11-09 16:00 +08:00" in clock.deadline_reason
    assert clock.next_due_transition(local(SH, "2026-11-09 10:30")) == ("warning", local(SH, "2026-11-09 11:00"), 50)


# -- several policies, timers and diffs -------------------------------------------------------------------


def test_every_policy_and_metric_gets_its_own_clock() -> None:
    bundle = parse_bundle("""
policies:
  - id: gold
    agreement: SLA
    match: {kind: incident}
    metrics:
      - {metric: response, calendar: 24x7, targets: {P2: 1h}, stop: {actions: [agent_replied]}}
      - {metric: resolution, calendar: 24x7, targets: {P2: 8h}, stop: {statuses: [resolved]}}
  - id: email-ola
    agreement: OLA
    match: {service: email, customer: [acme, globex]}
    metrics:
      - {metric: handover, calendar: 24x7, targets: {P2: 30m}, stop: {actions: [agent_replied]}}
  - id: problems-only
    agreement: UC
    match: {kind: problem}
    metrics:
      - {metric: resolution, calendar: 24x7, targets: {P2: 1d}}
""")
    events = [snap("e1", T("08:00"), "created"), snap("e2", T("08:20"), "agent_replied", "open")]
    clocks = evaluate_ticket(events, bundle, policy_version=4, at=T("09:00"))
    assert [(c.policy_id, c.agreement, c.metric, c.state, c.elapsed_seconds, c.policy_version) for c in clocks] == [
        ("gold", "SLA", "response", "met", 1200, 4),
        ("gold", "SLA", "resolution", "running", H, 4),
        ("email-ola", "OLA", "handover", "met", 1200, 4),
    ]


def test_next_timer_at_is_the_earliest_upcoming_crossing() -> None:
    clock = only_clock([snap("e1", T("08:00"), "created")], make_bundle(warn_at=[50]), T("09:00"))
    assert next_timer_at([clock]) == T("12:00")
    assert next_timer_at([clock], after=T("12:00")) == T("16:00")
    assert clock.next_due_transition(T("12:00")) == ("breached", T("16:00"), None)
    assert next_timer_at([]) is None


def test_a_late_event_retracts_a_breach_it_proves_wrong() -> None:
    bundle = make_bundle()
    created = snap("e1", T("08:00"), "created", priority="P1", arrival=1)
    before = only_clock([created], bundle, T("10:00"))
    emitted = [t.key for t in before.transitions]
    late = snap("e2", T("08:30"), "customer_replied", "pending_customer", "P1", arrival=2)
    after = only_clock([created, late], bundle, T("10:00"))
    diff = diff_transitions(emitted, after.transitions)
    assert [(t.transition, t.at) for t in diff.new] == [("paused", T("08:30"))]
    assert diff.retracted == [TransitionKey("gold", "resolution", 1, "breached", T("09:00"), 0)]


def test_transition_keys_compare_by_instant_and_treat_no_threshold_as_zero() -> None:
    clock = only_clock([snap("e1", T("08:00"), "created")], make_bundle(warn_at=[50]), T("13:00"))
    shanghai = datetime.fromisoformat("2026-11-02T16:00:00+08:00")  # 08:00 UTC
    stored = [
        ("gold", "resolution", 1, "started", shanghai, 0),
        ("gold", "resolution", 1, "warning", T("12:00"), 50),
        ("gold", "resolution", 1, "met", T("11:00"), None),
    ]
    diff = diff_transitions(stored, clock.transitions)
    assert diff.new == []
    assert diff.retracted == [TransitionKey("gold", "resolution", 1, "met", T("11:00"), 0)]


def test_an_empty_timeline_has_no_clocks_and_a_naive_instant_is_refused() -> None:
    assert evaluate_ticket([], make_bundle(), policy_version=1, at=T("09:00")) == []
    with pytest.raises(ValueError, match="aware"):
        evaluate_ticket([], make_bundle(), policy_version=1, at=datetime(2026, 11, 2))  # noqa: DTZ001


def test_every_reported_instant_is_utc() -> None:
    events = [snap("e1", datetime.fromisoformat("2026-11-02T16:00:00+08:00"), "created")]
    clock: Clock = only_clock(events, make_bundle(warn_at=[50]), T("13:00"))
    instants = [clock.started_at, *[t.at for t in clock.transitions], *[t.at for t in clock.upcoming]]
    assert all(i.tzinfo is UTC for i in instants)
