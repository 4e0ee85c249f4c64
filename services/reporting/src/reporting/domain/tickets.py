"""Ticket volumes: the state changes a ticket's timeline implies, a pure function of its snapshots.

Statuses fall in three groups: open (new, open, in_progress, pending_*, on_hold), done (resolved, closed) and
cancelled. A ticket is created at its first snapshot; moving open -> done is a resolution, done -> open a
reopen, anything -> cancelled a cancellation. `open_delta` is the change of the backlog (open tickets) at that
instant, so the backlog at any instant is the sum of the deltas before it. Because the result depends only on
the timeline sorted by event time, late and out-of-order snapshots give the in-order result.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

TransitionKind = Literal["created", "resolved", "reopened", "cancelled"]
Category = Literal["open", "done", "cancelled"]

DONE_STATUSES = frozenset({"resolved", "closed"})


def category(status: str) -> Category:
    if status in DONE_STATUSES:
        return "done"
    if status == "cancelled":
        return "cancelled"
    return "open"


@dataclass(frozen=True)
class Snapshot:
    at: datetime
    sequence: int  # arrival order, breaks ties of equal event times
    event_id: str
    action: str
    status: str
    priority: str
    service: str
    customer: str
    kind: str


@dataclass(frozen=True)
class VolumeTransition:
    at: datetime
    kind: TransitionKind
    open_delta: int
    priority: str
    service: str
    customer: str
    ticket_kind: str


def volume_transitions(timeline: list[Snapshot]) -> list[VolumeTransition]:
    ordered = sorted(timeline, key=lambda s: (s.at, s.sequence))
    found: list[VolumeTransition] = []
    previous: Category | None = None
    for snapshot in ordered:
        current = category(snapshot.status)

        def add(kind: TransitionKind, delta: int, snapshot: Snapshot = snapshot) -> None:
            found.append(
                VolumeTransition(
                    snapshot.at, kind, delta, snapshot.priority, snapshot.service, snapshot.customer, snapshot.kind
                )
            )

        if previous is None:
            add("created", 1)
            previous = "open"
        if current == previous:
            continue
        if current == "done":
            add("resolved", -1 if previous == "open" else 0)
        elif current == "cancelled":
            add("cancelled", -1 if previous == "open" else 0)
        else:
            add("reopened", 1)
        previous = current
    return found


def latest(timeline: list[Snapshot]) -> Snapshot:
    return max(timeline, key=lambda s: (s.at, s.sequence))
