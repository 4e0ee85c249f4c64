"""What the clock engine hands out: clocks, their transitions and their explained timeline.

All instants are UTC-aware datetimes at whole seconds; all durations are integer business seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

from slm_shared.business_time import NonWorkingSpan

TransitionName = Literal["started", "paused", "resumed", "warning", "breached", "met", "stopped_breached", "cancelled"]
ClockState = Literal["running", "paused", "met", "breached", "cancelled"]
SegmentState = Literal["running", "paused", "stopped"]


class TransitionKey(NamedTuple):
    """Identifies an emitted transition; `threshold` is 0 for transitions without one."""

    policy_id: str
    metric: str
    cycle: int
    transition: str
    at: datetime
    threshold: int


@dataclass(frozen=True)
class Transition:
    """A change of a clock at an event-time instant.

    `event_id` is the snapshot that caused it, None for a warning or breach that the passing of time caused.
    `elapsed_seconds` and `target_seconds` are the clock's values at that instant.
    """

    transition: TransitionName
    at: datetime
    threshold: int | None
    event_id: str | None
    elapsed_seconds: int
    target_seconds: int
    policy_id: str = ""
    metric: str = ""
    cycle: int = 0

    @property
    def key(self) -> TransitionKey:
        return TransitionKey(self.policy_id, self.metric, self.cycle, self.transition, self.at, self.threshold or 0)


@dataclass(frozen=True)
class Segment:
    """One stretch of a cycle in a single state, and why it began.

    `business_seconds` is what the stretch added to elapsed (0 unless running); `non_working` lists the time
    inside a running stretch that did not count (nights, lunch, weekends, holidays by name).
    """

    start: datetime
    end: datetime
    state: SegmentState
    event_id: str | None
    condition: str
    priority: str
    target_seconds: int
    business_seconds: int
    elapsed_at_end: int
    non_working: tuple[NonWorkingSpan, ...]


@dataclass(frozen=True)
class Clock:
    """One cycle of one metric of one policy for one ticket, as it stood at the evaluation instant.

    `due_at` is set only for a running clock below its target (not breached, or breached under an earlier,
    tighter target): the instant elapsed reaches the target if it keeps running. `stop_reason` says which rule
    stopped or cancelled the cycle (None while it runs or is paused). `upcoming` lists the warnings and the breach
    still ahead if the clock keeps running (empty unless running): what a durable timer must wake up for.
    """

    ticket_id: str
    policy_id: str
    policy_version: int
    agreement: str
    metric: str
    cycle: int
    state: ClockState
    breached: bool
    target_seconds: int
    elapsed_seconds: int
    remaining_seconds: int
    percent: float
    started_at: datetime
    stopped_at: datetime | None
    breached_at: datetime | None
    due_at: datetime | None
    service: str
    customer: str
    priority: str
    kind: str
    calendar: str
    transitions: tuple[Transition, ...]
    explanation: tuple[Segment, ...]
    deadline_reason: str
    stop_reason: str | None = None
    upcoming: tuple[Transition, ...] = ()

    def next_due_transition(self, after: datetime) -> tuple[str, datetime, int | None] | None:
        """The next warning or breach strictly after `after` if the clock keeps running; None otherwise."""
        for upcoming in self.upcoming:
            if upcoming.at > after:
                return upcoming.transition, upcoming.at, upcoming.threshold
        return None
