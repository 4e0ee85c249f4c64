"""The clock engine: a ticket's clocks as a pure function of its timeline (DESIGN.md section 4).

Rules:
- Only snapshots with `time <= at` count: clocks are "as they stood at `at`". The timeline is ordered by
  event time (ties: arrival) and de-duplicated by event id here, so late, out-of-order and redelivered
  snapshots give exactly the in-order result.
- Every policy of the bundle and every metric of each policy is evaluated; a (policy, metric) that never
  started has no clock. The rules of one cycle are in `sla_engine.domain.cycles`. A policy's metrics are
  only run from the first snapshot the bundle's policy index names it a candidate for (before, the policy
  matched nothing, so its metrics idled), and from then on see every snapshot: a cycle must see the one
  that no longer matches, to cancel. So the cost follows the policies a ticket meets, not the bundle's size.
- Event instants are used at whole-second precision (floored), like all business-time arithmetic.
- Warnings and breaches crossing at or before `at` are transitions even when no event came after them: the
  service schedules a durable timer at `next_due_transition` so that they are published on time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

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
from slm_shared.business_time import from_epoch, to_epoch

if TYPE_CHECKING:
    from sla_engine.domain.bundle import Bundle

__all__ = [
    "Clock",
    "ClockState",
    "Evaluation",
    "Segment",
    "SegmentState",
    "Transition",
    "TransitionDiff",
    "TransitionKey",
    "TransitionName",
    "diff_transitions",
    "evaluate_ticket",
    "evaluate_timeline",
    "next_timer_at",
    "transition_key",
]

CycleAt = tuple[str, str, int, datetime]  # policy, metric, cycle, instant


@dataclass(frozen=True)
class Evaluation:
    """A ticket's clocks at an instant, and for the transitions asked about, their clock at their own instant."""

    clocks: list[Clock]
    stood: Mapping[CycleAt, Clock]

    def clock_when(self, transition: Transition) -> Clock:
        """The transition's cycle as it stood at the transition's instant (its `sla.clock.v1` payload)."""
        return self.stood[(transition.policy_id, transition.metric, transition.cycle, transition.at)]


def evaluate_ticket(
    timeline: Sequence[TicketSnapshot], bundle: Bundle, *, policy_version: int, at: datetime
) -> list[Clock]:
    """Every clock of the ticket at `at`, in bundle order (policy, metric) and by cycle."""
    return evaluate_timeline(timeline, bundle, policy_version=policy_version, at=at).clocks


def evaluate_timeline(
    timeline: Sequence[TicketSnapshot],
    bundle: Bundle,
    *,
    policy_version: int,
    at: datetime,
    watch: Callable[[Transition], bool] | None = None,
    explain: bool = True,
) -> Evaluation:
    """`evaluate_ticket`, plus the clock as it stood at each transition `watch` accepts, in one pass.

    That clock equals the transition's cycle in `evaluate_ticket(..., at=transition.at)`, or the cycle's clock
    at `at` where that evaluation has no such cycle (a retroactive start, dated before the snapshot causing it).
    `explain=False` leaves every clock's `explanation` and `deadline_reason` empty, and everything else equal.
    """
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    snapshots = [snapshot for snapshot in ordered_timeline(timeline) if snapshot.time <= at]
    if not snapshots:
        return Evaluation([], {})
    seen: list[TicketSnapshot] = []
    runs: dict[int, list[MetricRun]] = {}  # by policy position, from the first snapshot it is a candidate for
    live: list[MetricRun] = []
    for snapshot in snapshots:
        seen.append(snapshot)
        for position in bundle.policy_index.candidates(snapshot):
            if position not in runs:
                policy = bundle.policies[position]
                runs[position] = [
                    MetricRun(policy, rule, bundle.calendar(rule.calendar), seen, watch, explain=explain)
                    for rule in policy.metrics
                ]
                live.extend(runs[position])
        instant = to_epoch(snapshot.time)
        for run in live:
            run.feed(snapshot, instant)
    at_epoch = to_epoch(at)
    ticket_id = snapshots[0].ticket_id
    ordered = [run for position in sorted(runs) for run in runs[position]]
    clocks = [
        clock for run in ordered for clock in run.finish(at_epoch, ticket_id=ticket_id, policy_version=policy_version)
    ]
    stood = {
        (run.policy.id, run.rule.metric, number, from_epoch(instant)): clock
        for run in ordered
        for (number, instant), clock in run.stood.items()
    }
    return Evaluation(clocks, stood)


def next_timer_at(clocks: Iterable[Clock], after: datetime | None = None) -> datetime | None:
    """The earliest warning or breach still ahead among the clocks (strictly after `after` if given)."""
    due = [upcoming.at for clock in clocks for upcoming in clock.upcoming if after is None or upcoming.at > after]
    return min(due, default=None)


@dataclass(frozen=True)
class TransitionDiff:
    """`new`: transitions not emitted yet. `retracted`: emitted ones a late event proved wrong."""

    new: list[Transition]
    retracted: list[TransitionKey]


def transition_key(key: TransitionKey | tuple[str, str, int, str, datetime, int | None]) -> TransitionKey:
    """A stored key as `Transition.key` spells it: a missing threshold is 0."""
    return TransitionKey(*key[:5], key[5] or 0)


def diff_transitions(
    previous: Iterable[TransitionKey | tuple[str, str, int, str, datetime, int | None]], current: Iterable[Transition]
) -> TransitionDiff:
    """Compare the keys already emitted with the transitions the timeline now implies.

    Keys compare by instant (aware datetimes in any offset) and a missing threshold equals 0.
    """
    emitted = [transition_key(key) for key in previous]
    emitted_set = set(emitted)
    current_list = list(current)
    current_keys = {transition.key for transition in current_list}
    new = [transition for transition in current_list if transition.key not in emitted_set]
    retracted = [key for key in dict.fromkeys(emitted) if key not in current_keys]
    return TransitionDiff(new=new, retracted=retracted)
