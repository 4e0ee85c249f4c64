"""What a batch of events does to the read models: which event wins a clock cycle, which volume transitions a
ticket's timeline makes, and the rollup deltas and counters that follow, summed per key for one write.

Rollups are kept by deltas: when a cycle's outcome or a ticket's volume transitions change, the old
contribution is subtracted and the new one added, in the same transaction as the raw row, so the rollups
always equal the aggregate of the raw rows. Pure: the caller loads the stored rows and writes the results.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from reporting.domain.outcomes import Contribution, arrived_out_of_order, contribution, wins
from reporting.domain.tickets import Snapshot, VolumeTransition, latest, volume_transitions

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from slm_shared.events import ClockTransitionData, CloudEvent, TicketSnapshotData

OUTCOME_DIMENSIONS = (
    "service",
    "customer",
    "agreement",
    "policy_id",
    "policy_version",
    "calendar",
    "metric",
    "priority",
)
TICKET_MEASURES = ("created", "resolved", "reopened", "cancelled")
CLOCK_MEASURES = ("met", "breached", "elapsed_sum", "over_target_sum")
CYCLE_KEY = ("tenant_id", "ticket_id", "policy_id", "metric", "cycle")

CycleKey = tuple[str, str, str, str, int]
TicketKey = tuple[str, str]


@dataclass(frozen=True)
class Effect:
    """What applying one event changed: the instants whose period counts moved, and how it arrived."""

    changed_at: tuple[datetime, ...] = ()
    out_of_order: bool = False
    recalculation: bool = False


def utc_day(instant: datetime) -> date:
    return instant.astimezone(UTC).date()


def hour_floor(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def periods_holding(closed: Sequence[tuple[datetime, datetime]], instants: Sequence[datetime]) -> list[datetime]:
    """The starts of the closed periods [start, end) that hold one of `instants`."""
    return sorted({start for start, end in closed if any(start <= i < end for i in instants)})


@dataclass
class Deltas:
    """The rollup and counter changes of one batch, summed per key, written once in key order (so concurrent
    replicas lock the shared rollup rows in the same order and never deadlock)."""

    clock_daily: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)
    ticket_daily: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)
    stats: dict[tuple[str, str, datetime], dict[str, Any]] = field(default_factory=dict)
    first_seen: dict[str, datetime] = field(default_factory=dict)
    late_changes: list[dict[str, Any]] = field(default_factory=list)

    def note_late_change(self, event: CloudEvent, periods: Iterable[datetime], received_at: datetime) -> None:
        """A late event that changed closed periods: one `late_changes` row per period."""
        self.late_changes.extend(
            {
                "tenant_id": event.tenantid,
                "period_start": start,
                "event_type": event.type,
                "event_id": event.id,
                "subject": event.subject,
                "received_at": received_at,
            }
            for start in periods
        )

    def add_clock(self, tenant: str, dims: Mapping[str, Any], part: Contribution, sign: int) -> None:
        key = (tenant, utc_day(part.stopped_at), *(dims[d] for d in OUTCOME_DIMENSIONS))
        sums = self.clock_daily.setdefault(key, [0, 0, 0, 0])
        for index, value in enumerate((part.met, part.breached, part.elapsed_seconds, part.over_target_seconds)):
            sums[index] += sign * value

    def add_ticket(self, tenant: str, transition: VolumeTransition, count: int) -> None:
        key = (tenant, utc_day(transition.at), transition.service, transition.customer, transition.priority)
        sums = self.ticket_daily.setdefault(key, [0, 0, 0, 0, 0])
        sums[TICKET_MEASURES.index(transition.kind)] += count
        sums[4] += count * transition.open_delta

    def count_event(self, event: CloudEvent, effect: Effect, after_close: bool, received_at: datetime) -> None:
        """The data notes' counters: events per type and UTC hour of event time, with their ranges."""
        key = (event.tenantid, event.type, hour_floor(event.time))
        found = self.stats.get(key)
        if found is None:
            self.stats[key] = found = {
                "events": 0,
                "first_event_time": event.time,
                "last_event_time": event.time,
                "first_received_at": received_at,
                "last_received_at": received_at,
                "out_of_order": 0,
                "after_close": 0,
                "recalculations": 0,
            }
        found["events"] += 1
        found["first_event_time"] = min(found["first_event_time"], event.time)
        found["last_event_time"] = max(found["last_event_time"], event.time)
        found["first_received_at"] = min(found["first_received_at"], received_at)
        found["last_received_at"] = max(found["last_received_at"], received_at)
        found["out_of_order"] += int(effect.out_of_order)
        found["after_close"] += int(after_close)
        found["recalculations"] += int(effect.recalculation)
        seen = self.first_seen.get(event.tenantid)
        self.first_seen[event.tenantid] = event.time if seen is None else min(seen, event.time)

    def note(
        self, closed: Sequence[tuple[datetime, datetime]], event: CloudEvent, effect: Effect, received_at: datetime
    ) -> None:
        """The event's counters, and a late-change note when it moved the counts of a period already closed."""
        late = periods_holding(closed, effect.changed_at)
        if late:
            self.note_late_change(event, late, received_at)
        self.count_event(event, effect, bool(late), received_at)


def cycle_key(event: CloudEvent, data: ClockTransitionData) -> CycleKey:
    return (event.tenantid, data.ticket_id, data.policy_id, data.metric, data.cycle)


def judge_clocks(
    deltas: Deltas,
    items: Sequence[tuple[CloudEvent, ClockTransitionData]],
    stored: Mapping[CycleKey, Mapping[str, Any]],
) -> tuple[list[Effect], dict[CycleKey, dict[str, Any]]]:
    """Each event judged, in order, against its cycle as the events before it left it (`outcomes.wins`), so the
    effects are those of one-at-a-time; returns the effects and the cycles' new rows (only those that changed)."""
    current: dict[CycleKey, Mapping[str, Any]] = dict(stored)
    changed_rows: dict[CycleKey, dict[str, Any]] = {}
    effects = []
    for event, data in items:
        key = cycle_key(event, data)
        effect, values = _clock_effect(deltas, event, data, key, current.get(key))
        if values is not None:
            current[key] = changed_rows[key] = values
        effects.append(effect)
    return effects, changed_rows


def _clock_effect(
    deltas: Deltas, event: CloudEvent, data: ClockTransitionData, key: CycleKey, found: Mapping[str, Any] | None
) -> tuple[Effect, dict[str, Any] | None]:
    current_time, current_sequence = (found["last_event_time"], found["last_sequence"]) if found else (None, None)
    out_of_order = arrived_out_of_order(
        event.time, current_time, new_sequence=data.sequence, current_sequence=current_sequence
    )
    if not wins(
        event.time, data.transition, current_time, new_sequence=data.sequence, current_sequence=current_sequence
    ):
        return Effect(out_of_order=True), None
    values = {
        "tenant_id": key[0],
        "ticket_id": key[1],
        "policy_id": key[2],
        "metric": key[3],
        "cycle": key[4],
        "agreement": data.agreement,
        "policy_version": data.policy_version,
        "state": data.state,
        "breached": data.breached,
        "service": data.service,
        "customer": data.customer,
        "priority": data.priority,
        "kind": data.kind,
        "calendar": data.calendar,
        "target_seconds": data.target_seconds,
        "elapsed_seconds": data.elapsed_seconds,
        "started_at": data.started_at,
        "due_at": data.due_at,
        "breached_at": data.breached_at,
        "stopped_at": data.stopped_at,
        "last_transition": data.transition,
        "last_event_time": event.time,
        "last_event_id": event.id,
        "last_sequence": data.sequence,
        "recalculations": (found["recalculations"] if found else 0) + (data.transition == "recalculated"),
    }
    old = _contribution_of(found) if found else None
    new = contribution(data.state, data.stopped_at, data.elapsed_seconds, data.target_seconds)
    old_dims = {k: found[k] for k in OUTCOME_DIMENSIONS} if found else None
    new_dims = {k: values[k] for k in OUTCOME_DIMENSIONS}
    changed: list[datetime] = []
    if (old, old_dims if old else None) != (new, new_dims if new else None):
        if old is not None and old_dims is not None:
            deltas.add_clock(event.tenantid, old_dims, old, -1)
            changed.append(old.stopped_at)
        if new is not None:
            deltas.add_clock(event.tenantid, new_dims, new, 1)
            changed.append(new.stopped_at)
    elif found is not None and _listed_fields(found) != _listed_fields(values):
        # Not in the counts, but in the lists (open breaches): a change all the same.
        changed.append(event.time)
    return Effect(tuple(changed), out_of_order, data.transition == "recalculated"), values


def _contribution_of(row: Mapping[str, Any]) -> Contribution | None:
    return contribution(row["state"], row["stopped_at"], row["elapsed_seconds"], row["target_seconds"])


def _listed_fields(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return (row["state"], row["breached"], row["breached_at"], row["stopped_at"])


def ticket_key(event: CloudEvent, data: TicketSnapshotData) -> TicketKey:
    return (event.tenantid, data.ticket_id)


def judge_tickets(
    deltas: Deltas,
    items: Sequence[tuple[CloudEvent, TicketSnapshotData]],
    sequences: Sequence[int],
    timelines: Mapping[TicketKey, Sequence[tuple[int, Snapshot]]],
    stored: Mapping[TicketKey, list[VolumeTransition]],
) -> tuple[list[Effect], dict[TicketKey, list[VolumeTransition]]]:
    """The volume transitions of the batch's tickets re-derived from their timelines (which hold the batch's
    snapshots, numbered `sequences`), and the rollup moved; each event judged against its ticket's timeline up
    to its own row, so the effects are exactly those of applying the events one at a time, in order."""
    current = {ticket: list(transitions) for ticket, transitions in stored.items()}
    effects = []
    for (event, data), sequence in zip(items, sequences, strict=True):
        ticket = ticket_key(event, data)
        timeline = [snapshot for seq, snapshot in timelines[ticket] if seq <= sequence]
        new = volume_transitions(timeline)
        removed = Counter(current.get(ticket, [])) - Counter(new)
        added = Counter(new) - Counter(current.get(ticket, []))
        for transition, count in removed.items():
            deltas.add_ticket(event.tenantid, transition, -count)
        for transition, count in added.items():
            deltas.add_ticket(event.tenantid, transition, count)
        current[ticket] = new
        effects.append(
            Effect(tuple(sorted({v.at for v in (*removed, *added)})), any(s.at > event.time for s in timeline))
        )
    return effects, current


def ticket_heads(
    timelines: Mapping[TicketKey, Sequence[tuple[int, Snapshot]]],
) -> dict[TicketKey, tuple[datetime, Snapshot]]:
    """Each ticket's creation instant (its first snapshot) and the snapshot that is its current state."""
    return {ticket: (snapshots[0][1].at, latest([s for _, s in snapshots])) for ticket, snapshots in timelines.items()}
