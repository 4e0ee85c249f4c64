"""What a recalculation or a simulation reports: the clocks whose outcome changes, and attainment before and
after. Pure: clocks in, figures out."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from datetime import datetime

    from sla_engine.domain.clocks import Clock

Recalculation = Literal["none", "ongoing", "all"]


@dataclass(frozen=True)
class ClockChange:
    ticket_id: str
    policy_id: str
    metric: str
    cycle: int
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass
class RecalculationReport:
    mode: Recalculation
    from_version: int | None
    to_version: int
    tickets_considered: int = 0
    clocks_changed: list[ClockChange] = field(default_factory=list)


def outcome(clock: Clock) -> dict[str, Any]:
    """The fields a customer would notice change: state, breach, target and deadline."""
    return {
        "state": clock.state,
        "breached": clock.breached,
        "target_seconds": clock.target_seconds,
        "due_at": clock.due_at.isoformat() if clock.due_at else None,
        "breached_at": clock.breached_at.isoformat() if clock.breached_at else None,
        "policy_version": clock.policy_version,
    }


def compare(ticket_id: str, before: list[Clock], after: list[Clock]) -> list[ClockChange]:
    def key(c: Clock) -> tuple[str, str, int]:
        return (c.policy_id, c.metric, c.cycle)

    old = {key(c): outcome(c) for c in before}
    new = {key(c): outcome(c) for c in after}
    changes = []
    for k in sorted(old.keys() | new.keys()):
        o, n = old.get(k), new.get(k)
        comparable_o = {f: v for f, v in (o or {}).items() if f != "policy_version"}
        comparable_n = {f: v for f, v in (n or {}).items() if f != "policy_version"}
        if o is None or n is None or comparable_o != comparable_n:
            changes.append(ClockChange(ticket_id, k[0], k[1], k[2], o, n))
    return changes


@dataclass(frozen=True)
class Attainment:
    met: int
    breached: int

    @property
    def percent(self) -> float | None:
        total = self.met + self.breached
        return None if total == 0 else round(100.0 * self.met / total, 2)


def attainment(clocks: list[Clock], start: datetime, end: datetime) -> dict[str, Attainment]:
    """Per policy/metric/priority: cycles that stopped in [start, end) as met or breached."""
    counts: Counter[tuple[str, str]] = Counter()
    for clock in clocks:
        if clock.stopped_at is None or not (start <= clock.stopped_at < end) or clock.state == "cancelled":
            continue
        group = f"{clock.policy_id}/{clock.metric}/{clock.priority}"
        counts[(group, "met" if clock.state == "met" else "breached")] += 1
    groups = sorted({g for g, _ in counts})
    return {g: Attainment(counts[(g, "met")], counts[(g, "breached")]) for g in groups}
