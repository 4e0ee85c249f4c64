"""The clock state machine of one metric of one policy over one ticket's timeline (DESIGN.md section 4).

Rules, in the order a snapshot at instant t is applied:
- Time first: while running, every warning and the breach whose crossing instant lies strictly before t fire
  at that instant (transitions without an event id), then elapsed grows by the business seconds up to t.
- Then the snapshot, with this precedence for an active cycle: a status in `cancel.statuses` cancels; else a
  stop action or status stops (met, or stopped_breached if breached before t: a stop exactly at the deadline
  is met); else a policy that no longer matches or a priority without a target cancels; else the priority in
  force sets the target (elapsed is kept) and the status pauses or resumes.
- Then, if the cycle still runs or is paused and is not breached, the warnings and the breach whose
  thresholds elapsed already reaches fire at t, in that order, caused by the snapshot. So a crossing exactly
  at t counts only if the snapshot at t did not stop or cancel the cycle, and is judged against the target
  in force at t: a pause exactly at the deadline is a breach there, a downgrade exactly then is not; an
  upgrade past the new target breaches at the upgrade, after the warnings it jumped over.
- A warning needs ceil(target x percent / 100) seconds; each threshold fires once per cycle, none after the
  breach; a breach stays whatever the target does later. A cancelled cycle reports no breach.
- Idle (no cycle yet, or the last one cancelled): a cycle starts at the first snapshot where the policy
  matches, the priority has a target and neither stop nor cancel holds; a snapshot in a pause status starts
  it paused (`started` then `paused`). With `start.retroactive` the first cycle (only) starts at the
  `created` snapshot instead, replaying the pause rule and priorities since then (a priority without a
  target keeps the previous one); its `started` transition is dated then but caused by the later snapshot.
- Stopped: a reopen is the action `reopened`, or for a cycle stopped by a status, a status no longer in
  `stop.statuses`; it counts only where the start rule holds. `resume` continues the cycle (`resumed`;
  elapsed and any breach kept), `new_cycle` starts cycle+1 from zero, `ignore` does nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sla_engine.domain.cycle_state import Clockwork, Cycle, OpenSegment, StoodCycles
from sla_engine.domain.explain import business_duration
from slm_shared.business_time import to_epoch

if TYPE_CHECKING:
    from collections.abc import Callable

    from sla_engine.domain.bundle import MetricRule, Policy
    from sla_engine.domain.results import Clock, Transition, TransitionName
    from sla_engine.domain.timeline import TicketSnapshot
    from slm_shared.business_time import BusinessCalendar


class MetricRun:
    """Feeds ordered snapshots through the rules of one (policy, metric) and yields its cycles as clocks.

    `seen` is the timeline fed so far, the snapshot being fed last: the caller appends to it, and may share it
    between runs. A run may skip the snapshots before its policy could first match (it would only have idled).
    For every transition `watch` accepts, `finish` also gives the cycle's clock as it stood at the transition's
    instant (`stood`): what evaluating only the timeline up to that instant would say of that cycle, or the
    final clock where that evaluation has no such cycle yet (a retroactive start dated before its cause).
    """

    def __init__(
        self,
        policy: Policy,
        rule: MetricRule,
        calendar: BusinessCalendar,
        seen: list[TicketSnapshot],
        watch: Callable[[Transition], bool] | None = None,
        *,
        explain: bool = True,
    ) -> None:
        self.policy = policy
        self.rule = rule
        self.calendar = calendar
        self._clockwork = Clockwork(policy, rule, calendar, explain=explain)
        self.phase: str = "idle"  # idle | active | stopped
        self.cycles: list[Cycle] = []
        self.seen = seen
        self.stood: dict[tuple[int, int], Clock] = {}  # (cycle, instant) -> the clock then; filled by finish
        self._watch = watch
        self._fed_at = 0
        self._stood_cycles = StoodCycles()

    # -- feeding ---------------------------------------------------------------------------------------

    def feed(self, snapshot: TicketSnapshot, t: int) -> None:
        if t > self._fed_at:
            self._stood_cycles.settle(self.cycles, self._stood_at)
        self._fed_at = t
        if self.phase == "idle":
            if self._start_holds(snapshot):
                self._start(snapshot, t)
        elif self.phase == "active":
            self._active(self.cycles[-1], snapshot, t)
        else:
            self._stopped(self.cycles[-1], snapshot, t)

    def _stop_reason(self, snapshot: TicketSnapshot) -> str | None:
        if snapshot.status in self.rule.stop_statuses:
            return f"status {snapshot.status} is in stop.statuses"
        if snapshot.action in self.rule.stop_actions:
            return f"action {snapshot.action} is in stop.actions"
        return None

    def _start_holds(self, snapshot: TicketSnapshot) -> bool:
        return (
            self.policy.matches(snapshot)
            and snapshot.priority in self.rule.targets
            and self._stop_reason(snapshot) is None
            and snapshot.status not in self.rule.cancel_statuses
        )

    def _start(self, snapshot: TicketSnapshot, t: int) -> None:
        target = self.rule.targets[snapshot.priority]
        why = (
            f"policy {self.policy.id} matches, {snapshot.priority} has a target of "
            f"{business_duration(target)}, no stop or cancel condition"
        )
        position = self._created_before(t) if self.rule.retroactive and not self.cycles else None
        if position is None:
            self._begin(snapshot, t, target, snapshot, f"started: {why}")
            self._post_check(self.cycles[-1], snapshot, t)
            return
        created = self.seen[position]
        created_at = _epoch(created)
        self._begin(
            created,
            created_at,
            self.rule.targets.get(created.priority, target),
            snapshot,
            f"started retroactively at the created event {created.event_id}: {why} at {snapshot.event_id}",
        )
        cycle = self.cycles[-1]
        for replayed in self.seen[position + 1 : -1]:
            self._advance(cycle, _epoch(replayed), inclusive=False)
            self._update(cycle, replayed, _epoch(replayed), self.rule.targets.get(replayed.priority, cycle.target))
            self._post_check(cycle, replayed, _epoch(replayed))
        self._advance(cycle, t, inclusive=False)
        self._update(cycle, snapshot, t, target)
        self._post_check(cycle, snapshot, t)

    def _created_before(self, t: int) -> int | None:
        """Position of the ticket's first `created` snapshot, if it lies before t."""
        for position, snapshot in enumerate(self.seen):
            if snapshot.action == "created":
                return position if _epoch(snapshot) < t else None
        return None

    def _begin(self, snapshot: TicketSnapshot, t: int, target: int, cause: TicketSnapshot, condition: str) -> None:
        running = snapshot.status not in self.rule.pause_statuses
        cycle = Cycle(
            number=len(self.cycles) + 1,
            started_at=t,
            priority=snapshot.priority,
            target=target,
            running=running,
            checkpoint=t,
            snapshot=cause,
            known_at=self._fed_at,
        )
        self.cycles.append(cycle)
        self.phase = "active"
        self._emit(cycle, "started", t, cause.event_id)
        if not running:
            self._emit(cycle, "paused", t, cause.event_id)
            condition += f"; status {snapshot.status} is in pause.statuses"
        cycle.open = OpenSegment(
            t, "running" if running else "paused", cause.event_id, condition, cycle.priority, target, 0
        )

    def _active(self, cycle: Cycle, snapshot: TicketSnapshot, t: int) -> None:
        self._advance(cycle, t, inclusive=False)
        cycle.snapshot = snapshot
        if snapshot.status in self.rule.cancel_statuses:
            self._cancel(cycle, snapshot, t, f"status {snapshot.status} is in cancel.statuses")
            return
        stop_reason = self._stop_reason(snapshot)
        if stop_reason is not None:
            self._stop(cycle, snapshot, t, stop_reason)
            return
        if not self.policy.matches(snapshot):
            self._cancel(cycle, snapshot, t, f"policy {self.policy.id} no longer matches ({self._mismatch(snapshot)})")
            return
        target = self.rule.targets.get(snapshot.priority)
        if target is None:
            self._cancel(cycle, snapshot, t, f"priority {snapshot.priority} has no target")
            return
        self._update(cycle, snapshot, t, target)
        self._post_check(cycle, snapshot, t)

    def _stopped(self, cycle: Cycle, snapshot: TicketSnapshot, t: int) -> None:
        if self.rule.on_reopen == "ignore":
            return
        if snapshot.action == "reopened":
            trigger = "action reopened"
        elif cycle.stopped_by_status and snapshot.status not in self.rule.stop_statuses:
            trigger = f"status {snapshot.status} is no longer in stop.statuses"
        else:
            return
        if not self._start_holds(snapshot):
            return
        if self.rule.on_reopen == "new_cycle":
            self._start(snapshot, t)
            return
        assert cycle.stopped_at is not None
        self._clockwork.close_stop(cycle, cycle.stopped_at, t)
        cycle.outcome, cycle.stopped_at, cycle.checkpoint, cycle.running = None, None, t, True
        cycle.snapshot = snapshot
        self.phase = "active"
        self._emit(cycle, "resumed", t, snapshot.event_id)
        cycle.open = OpenSegment(
            t,
            "running",
            snapshot.event_id,
            f"reopened ({trigger}): on_reopen resume",
            cycle.priority,
            cycle.target,
            cycle.elapsed,
        )
        self._update(cycle, snapshot, t, self.rule.targets[snapshot.priority])
        self._post_check(cycle, snapshot, t)

    # -- effects ---------------------------------------------------------------------------------------

    def _update(self, cycle: Cycle, snapshot: TicketSnapshot, t: int, target: int) -> None:
        """Apply the priority in force and the pause rule; a change closes the current segment."""
        changes: list[str] = []
        if snapshot.priority != cycle.priority or target != cycle.target:
            changes.append(
                f"priority {cycle.priority} to {snapshot.priority}: target "
                f"{business_duration(cycle.target)} to {business_duration(target)}, elapsed kept"
            )
            cycle.priority, cycle.target = snapshot.priority, target
        paused = snapshot.status in self.rule.pause_statuses
        if cycle.running and paused:
            cycle.running = False
            self._emit(cycle, "paused", t, snapshot.event_id)
            changes.append(f"status {snapshot.status} is in pause.statuses")
        elif not cycle.running and not paused:
            cycle.running = True
            self._emit(cycle, "resumed", t, snapshot.event_id)
            changes.append(f"status {snapshot.status} is not in pause.statuses")
        if not changes:
            return
        event_id: str | None = snapshot.event_id
        condition = "; ".join(changes)
        if cycle.open is not None and cycle.open.start == t:
            # Several changes at one instant make one segment, not empty ones.
            event_id, condition = cycle.open.event_id, f"{cycle.open.condition}; {condition}"
            cycle.open = None
        self._clockwork.close_segment(cycle, t)
        cycle.open = OpenSegment(
            t,
            "running" if cycle.running else "paused",
            event_id,
            condition,
            cycle.priority,
            cycle.target,
            cycle.elapsed,
        )

    def _stop(self, cycle: Cycle, snapshot: TicketSnapshot, t: int, reason: str) -> None:
        breached = cycle.breached_at is not None and cycle.breached_at < t
        cycle.outcome = "breached" if breached else "met"
        cycle.stopped_at, cycle.stop_event, cycle.stop_condition = t, snapshot.event_id, reason
        cycle.stopped_by_status = snapshot.status in self.rule.stop_statuses
        self._emit(cycle, "stopped_breached" if breached else "met", t, snapshot.event_id)
        self._clockwork.close_segment(cycle, t)
        self.phase = "stopped"

    def _cancel(self, cycle: Cycle, snapshot: TicketSnapshot, t: int, reason: str) -> None:
        cycle.outcome = "cancelled"
        cycle.stopped_at, cycle.stop_event, cycle.stop_condition = t, snapshot.event_id, reason
        self._emit(cycle, "cancelled", t, snapshot.event_id)
        self._clockwork.close_segment(cycle, t)
        self.phase = "idle"  # a cancelled cycle is final; the start rule may begin the next one later

    def _mismatch(self, snapshot: TicketSnapshot) -> str:
        for key, values in self.policy.match.items():
            if snapshot.field_value(key) not in values:
                return f"{key} is {snapshot.field_value(key)}, not {' or '.join(values)}"
        return "no match"

    # -- time ------------------------------------------------------------------------------------------

    def _advance(self, cycle: Cycle, to: int, *, inclusive: bool) -> None:
        """Let time run to `to`: fire the crossings before it (or at it, if inclusive), then count."""
        if cycle.running and to > cycle.checkpoint:
            for name, threshold, needed, instant in self._clockwork.reached(cycle, to, inclusive=inclusive):
                self._emit(cycle, name, instant, None, threshold=threshold, elapsed=needed)
            cycle.elapsed += self.calendar.business_seconds_between_epochs(cycle.checkpoint, to)
        cycle.checkpoint = max(cycle.checkpoint, to)

    def _post_check(self, cycle: Cycle, snapshot: TicketSnapshot, t: int) -> None:
        for name, threshold, needed in self._clockwork.pending(cycle):
            if cycle.elapsed >= needed:
                self._emit(cycle, name, t, snapshot.event_id, threshold=threshold)

    def _emit(
        self,
        cycle: Cycle,
        name: TransitionName,
        at: int,
        event_id: str | None,
        *,
        threshold: int | None = None,
        elapsed: int | None = None,
    ) -> None:
        if name == "warning" and threshold is not None:
            cycle.warned.add(threshold)
        if name == "breached":
            cycle.breached_at = at
        transition = self._clockwork.transition(
            cycle, name, at, threshold, event_id, cycle.elapsed if elapsed is None else elapsed
        )
        cycle.transitions.append(transition)
        if self._watch is not None and not cycle.shadow and self._watch(transition):
            self._stood_cycles.capture(cycle, at, crossing=elapsed is not None, stood_at=self._stood_at)

    # -- the clock as it stood at a transition's instant, and the results -----------------------------------

    def _stood_at(self, cycle: Cycle, at: int) -> Cycle:
        """A copy of the cycle run up to `at` (crossings at `at` included), as `finish(at)` would."""
        copy = cycle.shadow_copy()
        if self.phase == "active" and cycle is self.cycles[-1]:
            self._advance(copy, at, inclusive=True)
        return copy

    def finish(self, at: int, *, ticket_id: str, policy_version: int) -> list[Clock]:
        """Run the active cycle up to `at` (crossings at `at` included) and report every cycle."""
        self._stood_cycles.settle(self.cycles, self._stood_at)
        if self.phase == "active":
            self._advance(self.cycles[-1], at, inclusive=True)
        clocks = [self._clockwork.clock(cycle, at, ticket_id, policy_version) for cycle in self.cycles]
        self.stood = {
            (number, instant): clocks[number - 1]
            if stood is None
            else self._clockwork.clock(stood, instant, ticket_id, policy_version)
            for (number, instant), stood in self._stood_cycles.cycles.items()
        }
        return clocks


def _epoch(snapshot: TicketSnapshot) -> int:
    return to_epoch(snapshot.time)
