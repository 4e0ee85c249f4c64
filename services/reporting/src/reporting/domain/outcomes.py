"""Clock outcomes: which transition wins a cycle, and what a cycle contributes to the period counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Contribution:
    """A stopped cycle's share of the rollups: it counts on the UTC day of `stopped_at`, met or breached."""

    stopped_at: datetime
    met: int
    breached: int
    elapsed_seconds: int
    over_target_seconds: int


def wins(
    new_time: datetime,
    new_transition: str,
    current_time: datetime | None,
    *,
    new_sequence: int | None = None,
    current_sequence: int | None = None,
) -> bool:
    """Whether a cycle's new event replaces the one that won it so far.

    The engine numbers each cycle's events (`sequence`): the highest is the cycle's current state, whatever the
    arrival order, and a numbered event beats an unnumbered one (published by an older engine, so earlier).
    Between unnumbered events the latest by event time wins (ties: the later arrival) and `recalculated`
    always replaces.
    """
    if current_time is None:
        return True
    if new_sequence is not None or current_sequence is not None:
        return new_sequence is not None and (current_sequence is None or new_sequence > current_sequence)
    return new_transition == "recalculated" or new_time >= current_time


def arrived_out_of_order(
    new_time: datetime,
    current_time: datetime | None,
    *,
    new_sequence: int | None = None,
    current_sequence: int | None = None,
) -> bool:
    """An event that arrives after one published after it: by sequence when both have one, else by event time."""
    if current_time is None:
        return False
    if new_sequence is not None and current_sequence is not None:
        return new_sequence < current_sequence
    return new_time < current_time


def contribution(
    state: str, stopped_at: datetime | None, elapsed_seconds: int, target_seconds: int
) -> Contribution | None:
    """Met and breached cycles count where they stopped; running, paused and cancelled cycles count nowhere."""
    if stopped_at is None or state not in ("met", "breached"):
        return None
    breached = state == "breached"
    return Contribution(
        stopped_at,
        0 if breached else 1,
        1 if breached else 0,
        elapsed_seconds,
        max(0, elapsed_seconds - target_seconds) if breached else 0,
    )
