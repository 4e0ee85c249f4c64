"""A planned notification until it goes out: late arrival, whether it still holds, its figures, retries.

Pure, time passed in: what becomes of it when its event arrives late, whether its condition still holds at
sending time, the clock's figures at that instant, and when to try again after a failed send."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from reporting.domain.live import Calendars, live_values, working_calendar
from reporting.domain.notifications import BEFORE_DUE, FINAL, RESOLVE


@dataclass(frozen=True)
class ClockNow:
    """The clock's cycle as the read model holds it at sending time."""

    state: str  # running | paused | met | breached | cancelled
    breached: bool
    target_seconds: int
    elapsed_seconds: int
    last_event_time: datetime
    due_at: datetime | None
    breached_at: datetime | None
    calendar: str
    policy_version: int = 0  # the bundle version the clock is pinned to: whose calendar it counts with

    @property
    def calendar_key(self) -> tuple[str, int]:
        return (self.calendar, self.policy_version)


def still_holds(
    trigger: str,
    clock: ClockNow | None,
    planned_due: datetime | None = None,
    resolved_at: datetime | None = None,
    fired_at: datetime | None = None,
) -> str | None:
    """None when the notification should go out now, else why it is suppressed.

    A warning or a breach (and every escalation of them) is news only while the clock runs: an answered,
    paused, stopped or cancelled clock needs nobody. A `stopped_breached` and a `report.published` are facts
    and always go. A lead-time notification also needs the clock still due at `planned_due` (the due instant it
    was planned from): a recalculation that moved it re-plans it, and this one is stale. An SLO alert (and its
    escalations) is news only while the alert fires: `resolved_at`, the alert's latest `resolved` as the read
    model holds it, after `fired_at` (the episode's firing instant) suppresses it.
    """
    if trigger.startswith("slo:"):
        if resolved_at is not None and fired_at is not None and resolved_at > fired_at:
            return f"the SLO alert resolved at {resolved_at.isoformat()}"
        return None
    if trigger in (*FINAL, RESOLVE):
        return None
    if clock is None:
        return "the clock is not in the read model"
    if clock.state != "running":
        return f"the clock is {clock.state}"
    if trigger == "breached" and not clock.breached:
        return "the clock is no longer breached"
    if trigger.startswith("warning") and clock.breached:
        return "superseded by the cycle's breach"  # its breach notification says more, and later
    if trigger.startswith(BEFORE_DUE):
        if clock.breached:
            return "superseded by the cycle's breach"
        if clock.due_at != planned_due:
            return f"the due instant moved from {planned_due} to {clock.due_at}"
    return None


@dataclass(frozen=True)
class Lateness:
    """How reporting treats an event that reaches it after its instant (it was down, or lagging)."""

    late_after: timedelta = timedelta(minutes=1)  # received later than this after its instant: late
    horizon: timedelta = timedelta(hours=24)  # later than this: history (a replay, a rebuilt read model)
    settle: timedelta = timedelta(seconds=30)  # a late notification waits this long for the backlog behind it


@dataclass(frozen=True)
class Arrival:
    """What becomes of a notification planned from an event received at some instant."""

    suppressed: str | None  # why it will never be sent; None: it is pending
    due_at: datetime
    late: bool


def on_arrival(
    due_at: datetime, event_at: datetime, received_at: datetime, lateness: Lateness, newest: bool
) -> Arrival:
    """A breach that happened while reporting was down is still told when it comes back, never a flood of
    old news after a replay:

    - received within `late_after` of its instant: on time;
    - later than `horizon`: history, suppressed as stale (a replay of the topic, a rebuilt read model);
    - in between, late: suppressed when its cycle had already moved on when it arrived (`newest` false: the
      read model holds a later publication of the cycle, so this one is a replayed or overtaken transition);
      otherwise due no earlier than `settle` after its arrival, so the cycle's later events in the same
      backlog are applied first, and then sent only if its condition still holds (`still_holds`), marked late
      with how late. A warning whose cycle breached meanwhile is superseded by the breach at sending time.
    """
    age = received_at - event_at
    if age <= lateness.late_after:
        return Arrival(None, due_at, late=False)
    if age > lateness.horizon:
        return Arrival(f"stale: received {age} after the event", due_at, late=True)
    if not newest:
        return Arrival("superseded: its cycle had moved on when it arrived", due_at, late=True)
    return Arrival(None, max(due_at, received_at + lateness.settle), late=True)


@dataclass(frozen=True)
class Values:
    """The clock's figures for the sending instant, in the clock's working time (`exact`). A running clock on a
    calendar reporting has not received keeps its stored figures as of `as_of`, with a `note` saying why; its
    deadline (`due_at`, computed by the engine and exact while the clock runs) is what the message leads with."""

    elapsed_seconds: int
    remaining_seconds: int
    percent: float
    due_at: datetime | None
    as_of: datetime
    exact: bool
    note: str | None = None


def values_at(clock: ClockNow, now: datetime, calendars: Calendars) -> Values:
    """The figures at `now`, brought forward exactly as the live report brings them (domain.live): the same
    calendar lookup (`calendars`: the ones reporting holds, by calendar and bundle version) and arithmetic."""
    calendar = working_calendar(clock.calendar, clock.policy_version, calendars)
    live = live_values(clock.state, calendar, clock.elapsed_seconds, clock.target_seconds, clock.last_event_time, now)
    note = (
        None
        if live.live or calendar is not None
        else (
            f"calendar {clock.calendar!r} of bundle version {clock.policy_version} is not known to reporting: "
            "figures as of the clock's last transition"
        )
    )
    return Values(
        live.elapsed_seconds,
        live.remaining_seconds,
        live.percent if live.percent is not None else 0.0,
        clock.due_at if clock.state == "running" else None,
        now if live.live else clock.last_event_time,
        live.live,
        note,
    )


def retry_delay(
    attempts: int, jitter: float, first: timedelta = timedelta(seconds=10), cap: timedelta = timedelta(hours=1)
) -> timedelta:
    """The pause after the `attempts`-th failed try: exponential from `first`, capped, half of it fixed and half
    scaled by `jitter` in [0, 1), so receivers that failed together are not retried in lockstep (the same shape
    as the kit's `Backoff`, kept here because the attempt count lives in the database, not in a loop)."""
    step: timedelta = min(cap, first * 2 ** min(max(attempts - 1, 0), 30))
    return step / 2 + step * (jitter / 2)
