"""The continual improvement register's rules: which status may follow which, the entries a closed period
proposes for its missed quality targets, and when an entry's after-value is measured. Values (baseline, after)
are always measured, never typed in.

After-values: completing an entry measures its KPI on the period holding the completion, up to that instant
(`AT_COMPLETION`, provisional: it mixes time before and after the change); the close of the first whole period
after the completion measures it again on that period (`AT_CLOSE`, final), automatically.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from reporting.domain.periods import Period, previous_periods

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from reporting.domain.quality import QualityResult

Status = Literal["proposed", "open", "in_progress", "done", "cancelled"]
TriggerKind = Literal["missed_target", "breached_clock", "slo_alert", "complaint", "assessment"]
AT_COMPLETION: Final = "at completion"
AT_CLOSE: Final = "at close"
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
    return [
        Proposal(
            f"{r.target_id}@{period_label}",
            f"Missed in {period_label}: {r.standard}",
            r.target_id,
            r.value,
            r.threshold,
            r.comparison,
        )
        for r in results
        if r.status == "missed"
    ]


def completed_at(history: Sequence[dict[str, Any]]) -> datetime | None:
    """When the entry became done (its history's last `done`), or None."""
    done = [entry["at"] for entry in history if entry.get("status") == "done"]
    return datetime.fromisoformat(done[-1]) if done else None


def measures_after(
    status: str, history: Sequence[dict[str, Any]], after_period: dict[str, Any] | None, closing: Period
) -> bool:
    """Whether closing `closing` measures the entry's after-value: the entry is done, its after-value is not final
    yet, and `closing` is the first whole period after the completion (the period before it holds the completion).
    """
    done_at = completed_at(history)
    if status != "done" or done_at is None or (after_period or {}).get("measured") == AT_CLOSE:
        return False
    [before] = previous_periods(closing, 1)
    return before.start <= done_at < before.end
