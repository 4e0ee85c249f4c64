"""The clock engine: a ticket's clocks as a pure function of its timeline (DESIGN.md section 4).

Rules:
- Only snapshots with `time <= at` count: clocks are "as they stood at `at`". The timeline is ordered by
  event time (ties: arrival) and de-duplicated by event id here, so late, out-of-order and redelivered
  snapshots give exactly the in-order result.
- Every policy of the bundle and every metric of each policy is evaluated; a (policy, metric) that never
  started has no clock. The rules of one cycle are in `sla_engine.domain.cycles`.
- Event instants are used at whole-second precision (floored), like all business-time arithmetic.
- Warnings and breaches crossing at or before `at` are transitions even when no event came after them: the
  service schedules a durable timer at `next_due_transition` so that they are published on time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sla_engine.domain.bundle import Bundle
from sla_engine.domain.calendar import to_epoch
from sla_engine.domain.cycles import MetricRun
from sla_engine.domain.results import (
    Clock,
    ClockState,
    Segment,
    SegmentState,
    Transition,
    TransitionKey,
    TransitionName,
)
from sla_engine.domain.timeline import TicketSnapshot, ordered_timeline

__all__ = [
    "Clock", "ClockState", "Segment", "SegmentState", "Transition", "TransitionDiff", "TransitionKey",
    "TransitionName", "diff_transitions", "evaluate_ticket", "next_timer_at",
]


def evaluate_ticket(timeline: Sequence[TicketSnapshot], bundle: Bundle, *, policy_version: int,
                    at: datetime) -> list[Clock]:
    """Every clock of the ticket at `at`, in bundle order (policy, metric) and by cycle."""
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    snapshots = [snapshot for snapshot in ordered_timeline(timeline) if snapshot.time <= at]
    if not snapshots:
        return []
    runs = [MetricRun(policy, rule, bundle.calendar(rule.calendar)) for policy in bundle.policies
            for rule in policy.metrics]
    for snapshot in snapshots:
        instant = to_epoch(snapshot.time)
        for run in runs:
            run.feed(snapshot, instant)
    at_epoch = to_epoch(at)
    ticket_id = snapshots[0].ticket_id
    return [clock for run in runs for clock in run.finish(at_epoch, ticket_id=ticket_id,
                                                          policy_version=policy_version)]


def next_timer_at(clocks: Iterable[Clock], after: datetime | None = None) -> datetime | None:
    """The earliest warning or breach still ahead among the clocks (strictly after `after` if given)."""
    due = [upcoming.at for clock in clocks for upcoming in clock.upcoming if after is None or upcoming.at > after]
    return min(due, default=None)


@dataclass(frozen=True)
class TransitionDiff:
    """`new`: transitions not emitted yet. `retracted`: emitted ones a late event proved wrong."""

    new: list[Transition]
    retracted: list[TransitionKey]


def diff_transitions(previous: Iterable[TransitionKey | tuple[str, str, int, str, datetime, int | None]],
                     current: Iterable[Transition]) -> TransitionDiff:
    """Compare the keys already emitted with the transitions the timeline now implies.

    Keys compare by instant (aware datetimes in any offset) and a missing threshold equals 0.
    """
    emitted = [TransitionKey(*key[:5], key[5] or 0) for key in previous]
    emitted_set = set(emitted)
    current_list = list(current)
    current_keys = {transition.key for transition in current_list}
    new = [transition for transition in current_list if transition.key not in emitted_set]
    retracted = [key for key in dict.fromkeys(emitted) if key not in current_keys]
    return TransitionDiff(new=new, retracted=retracted)
