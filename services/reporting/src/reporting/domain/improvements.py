"""The continual improvement register's rules: which status may follow which, and the entries a closed period
proposes for its missed quality targets. Values (baseline, after) are always measured, never typed in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from reporting.domain.quality import QualityResult

Status = Literal["proposed", "open", "in_progress", "done", "cancelled"]
TriggerKind = Literal["missed_target", "breached_clock", "slo_alert", "complaint", "assessment"]
NEXT: dict[str, frozenset[str]] = {
    "proposed": frozenset({"open", "cancelled"}),
    "open": frozenset({"in_progress", "done", "cancelled"}),
    "in_progress": frozenset({"done", "cancelled"}),
    "done": frozenset(),
    "cancelled": frozenset(),
}


class TransitionRefused(ValueError):
    pass


def check_transition(current: str, new: str) -> None:
    if new != current and new not in NEXT.get(current, frozenset()):
        allowed = ", ".join(sorted(NEXT.get(current, frozenset()))) or "none (final)"
        raise TransitionRefused(f"an entry {current!r} cannot become {new!r}; allowed: {allowed}")


@dataclass(frozen=True)
class Proposal:
    trigger_ref: str  # "<target id>@<period label>"
    title: str
    target_id: str
    baseline_value: float | None
    target_value: float
    comparison: str


def proposals(results: Iterable[QualityResult], period_label: str) -> list[Proposal]:
    """One proposed entry per target the period missed (not for no or insufficient data)."""
    return [Proposal(f"{r.target_id}@{period_label}", f"Missed in {period_label}: {r.standard}", r.target_id,
                     r.value, r.threshold, r.comparison)
            for r in results if r.status == "missed"]
