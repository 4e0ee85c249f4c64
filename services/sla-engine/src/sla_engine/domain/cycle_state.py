"""One cycle of a (policy, metric) run as it stands: what it holds, the copies kept of it as it stood at an
instant, the crossings business time brings it to, and the clock it reports. The rules that move it from
snapshot to snapshot are `domain/cycles.py`'s."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from sla_engine.domain.explain import deadline_reason
from sla_engine.domain.results import Clock, ClockState, Segment, SegmentState, Transition, TransitionName
from sla_engine.domain.timeline import TicketSnapshot
from slm_shared.business_time import from_epoch

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sla_engine.domain.bundle import MetricRule, Policy
    from slm_shared.business_time import BusinessCalendar

# A crossing still ahead: the transition, its warning threshold (None for the breach), the elapsed seconds it needs.
Crossing = tuple[TransitionName, int | None, int]


def warning_seconds(target: int, percent: int) -> int:
    """Elapsed seconds at which `percent`% of `target` is reached, rounded up to the next whole second."""
    return -(-target * percent // 100)


@dataclass
class OpenSegment:
    start: int
    state: SegmentState
    event_id: str | None
    condition: str
    priority: str
    target: int
    elapsed_at_start: int


@dataclass
class Cycle:
    number: int
    started_at: int
    priority: str
    target: int
    running: bool
    checkpoint: int
    snapshot: TicketSnapshot
    known_at: int  # the instant of the snapshot that started it: an evaluation up to earlier has no such cycle
    elapsed: int = 0
    breached_at: int | None = None
    warned: set[int] = field(default_factory=set)
    stopped_at: int | None = None
    stopped_by_status: bool = False
    stop_event: str | None = None
    stop_condition: str = ""
    outcome: ClockState | None = None
    transitions: list[Transition] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    open: OpenSegment | None = None
    shadow: bool = False  # a copy that shows the cycle as it stood at an instant; its transitions are not watched

    def shadow_copy(self) -> Cycle:
        return replace(
            self, warned=set(self.warned), transitions=list(self.transitions), segments=list(self.segments), shadow=True
        )


class StoodCycles:
    """Copies of a run's cycles as they stood at the instants of watched transitions (`MetricRun.stood`): a
    crossing's at once, a snapshot's once every snapshot of its instant is fed, and None (the final clock) for
    an instant before the cycle was known."""

    __slots__ = ("_deferred", "cycles")

    def __init__(self) -> None:
        self.cycles: dict[tuple[int, int], Cycle | None] = {}  # (cycle, instant) -> the copy; None: the final clock
        self._deferred: list[tuple[int, int]] = []  # (cycle, instant) of transitions caused by a snapshot

    def capture(self, cycle: Cycle, at: int, *, crossing: bool, stood_at: Callable[[Cycle, int], Cycle]) -> None:
        key = (cycle.number, at)
        if key in self.cycles or key in self._deferred:
            return
        if at < cycle.known_at:
            self.cycles[key] = None
        elif crossing:
            # Emitted while time runs towards a later instant: the cycle stands exactly at `at` now.
            self.cycles[key] = stood_at(cycle, at)
        else:
            # Caused by a snapshot: other snapshots at the same instant still count, so wait until they are fed.
            self._deferred.append(key)

    def settle(self, cycles: Sequence[Cycle], stood_at: Callable[[Cycle, int], Cycle]) -> None:
        """Copy the deferred cycles, now that every snapshot of their instant is fed."""
        for number, at in self._deferred:
            self.cycles[(number, at)] = stood_at(cycles[number - 1], at)
        self._deferred.clear()


class Clockwork:
    """What a run's cycles need besides the snapshots: the crossings business time brings a cycle to, the
    segments that explain it, and the clock it reports at an instant. Without `explain`, clocks carry no
    explanation and no deadline reason (empty): reconciling publishes neither, and writing them was a third of
    an evaluation. Every other figure is the same."""

    __slots__ = ("calendar", "explain", "policy", "rule")

    def __init__(self, policy: Policy, rule: MetricRule, calendar: BusinessCalendar, *, explain: bool) -> None:
        self.policy = policy
        self.rule = rule
        self.calendar = calendar
        self.explain = explain

    def pending(self, cycle: Cycle) -> list[Crossing]:
        """Crossings still ahead, by the elapsed seconds they need: warnings first, the breach last."""
        if cycle.breached_at is not None:
            return []
        ahead: list[Crossing] = [
            ("warning", percent, warning_seconds(cycle.target, percent))
            for percent in self.rule.warn_at
            if percent not in cycle.warned
        ]
        ahead.append(("breached", None, cycle.target))
        return ahead

    def reached(self, cycle: Cycle, to: int, *, inclusive: bool) -> list[tuple[TransitionName, int | None, int, int]]:
        """The crossings a running cycle reaches while time runs from its checkpoint to `to` (at `to` too, if
        inclusive), in order, each with the elapsed seconds it needs and its instant."""
        reached = []
        for name, threshold, needed in self.pending(cycle):
            if needed <= cycle.elapsed:
                continue
            instant = self.calendar.deadline_after_epoch(cycle.checkpoint, needed - cycle.elapsed)
            if instant > to or (instant == to and not inclusive):
                break
            reached.append((name, threshold, needed, instant))
        return reached

    def upcoming(self, cycle: Cycle) -> list[Transition]:
        """The crossings a still-running cycle will reach if nothing changes, from its checkpoint on."""
        if not cycle.running or cycle.outcome is not None:
            return []
        ahead = []
        for name, threshold, needed in self.pending(cycle):
            instant = self.calendar.deadline_after_epoch(cycle.checkpoint, max(0, needed - cycle.elapsed))
            ahead.append(self.transition(cycle, name, instant, threshold, None, needed))
        return ahead

    def transition(
        self, cycle: Cycle, name: TransitionName, at: int, threshold: int | None, event_id: str | None, elapsed: int
    ) -> Transition:
        return Transition(
            name,
            from_epoch(at),
            threshold,
            event_id,
            elapsed,
            cycle.target,
            self.policy.id,
            self.rule.metric,
            cycle.number,
        )

    def segment(self, open_segment: OpenSegment, end: int, elapsed_at_end: int) -> Segment:
        start, finish = from_epoch(open_segment.start), from_epoch(end)
        counted = elapsed_at_end - open_segment.elapsed_at_start
        skipped = tuple(self.calendar.non_working_spans(start, finish)) if open_segment.state == "running" else ()
        return Segment(
            start,
            finish,
            open_segment.state,
            open_segment.event_id,
            open_segment.condition,
            open_segment.priority,
            open_segment.target,
            counted,
            elapsed_at_end,
            skipped,
        )

    def close_segment(self, cycle: Cycle, t: int) -> None:
        if cycle.open is not None and not self.explain:
            cycle.open = None
        if cycle.open is not None:
            cycle.segments.append(self.segment(cycle.open, t, cycle.elapsed))
            cycle.open = None

    def close_stop(self, cycle: Cycle, stopped_at: int, t: int) -> None:
        """The stopped span a resume at `t` ends, as a segment of the cycle's explanation."""
        if self.explain:
            cycle.segments.append(
                self.segment(
                    OpenSegment(
                        stopped_at,
                        "stopped",
                        cycle.stop_event,
                        cycle.stop_condition,
                        cycle.priority,
                        cycle.target,
                        cycle.elapsed,
                    ),
                    t,
                    cycle.elapsed,
                )
            )

    def clock(self, cycle: Cycle, at: int, ticket_id: str, policy_version: int) -> Clock:
        segments = list(cycle.segments)
        if cycle.open is not None and self.explain:
            segments.append(self.segment(cycle.open, max(at, cycle.open.start), cycle.elapsed))
        state: ClockState = cycle.outcome or ("running" if cycle.running else "paused")
        # A met cycle reports no breach: one crossed at the very instant it stopped (a pause exactly at the deadline,
        # then a stop at that instant) is not earlier than the stop, so it does not count (DESIGN 4.3).
        breached_at = (
            from_epoch(cycle.breached_at)
            if cycle.breached_at is not None and state not in ("cancelled", "met")
            else None
        )
        upcoming = tuple(self.upcoming(cycle))
        due_at = next((u.at for u in upcoming if u.transition == "breached"), None)
        if state == "running" and cycle.breached_at is not None and cycle.elapsed < cycle.target:
            # Breached under a tighter target, now below a looser one: still due when elapsed reaches it (4.9).
            due_at = from_epoch(self.calendar.deadline_after_epoch(cycle.checkpoint, cycle.target - cycle.elapsed))
        stopped_at = from_epoch(cycle.stopped_at) if cycle.stopped_at is not None else None
        stop_reason = cycle.stop_condition if cycle.outcome is not None else None
        snapshot = cycle.snapshot
        return Clock(
            ticket_id=ticket_id,
            policy_id=self.policy.id,
            policy_version=policy_version,
            agreement=self.policy.agreement,
            metric=self.rule.metric,
            cycle=cycle.number,
            state=state,
            breached=breached_at is not None,
            target_seconds=cycle.target,
            elapsed_seconds=cycle.elapsed,
            remaining_seconds=cycle.target - cycle.elapsed,
            percent=round(100 * cycle.elapsed / cycle.target, 2) if cycle.target else 0.0,
            started_at=from_epoch(cycle.started_at),
            stopped_at=stopped_at,
            breached_at=breached_at,
            due_at=due_at,
            service=snapshot.service,
            customer=snapshot.customer,
            priority=cycle.priority,
            kind=snapshot.kind,
            calendar=self.calendar.name,
            transitions=tuple(sorted(cycle.transitions, key=lambda transition: transition.at)),
            explanation=tuple(segments),
            deadline_reason=deadline_reason(
                calendar=self.calendar,
                priority=cycle.priority,
                target_seconds=cycle.target,
                elapsed_seconds=cycle.elapsed,
                state=state,
                breached_at=breached_at,
                stopped_at=stopped_at,
                due_at=due_at,
                segments=segments,
                stop_reason=stop_reason,
            )
            if self.explain
            else "",
            stop_reason=stop_reason,
            upcoming=upcoming,
        )
