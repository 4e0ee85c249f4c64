"""The continual improvement register's rules: which status may follow which and what a change of an entry
records, the entries a closed period proposes for its missed quality targets, and when an entry's after-value is
measured. Values (baseline, after) are always measured, never typed in.

After-values: completing an entry measures its KPI on the period holding the completion, up to that instant
(`AT_COMPLETION`, provisional: it mixes time before and after the change); the close of the first whole period
after the completion measures it again on that period (`AT_CLOSE`, final), automatically.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from reporting.domain.periods import Period, previous_periods

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from reporting.domain.quality import QualityResult

Status = Literal["proposed", "open", "in_progress", "done", "cancelled"]
TriggerKind = Literal["missed_target", "breached_clock", "slo_alert", "complaint", "assessment"]
AT_COMPLETION: Final = "at completion"
AT_CLOSE: Final = "at close"
# A proposed entry's title: this, with the period's label, then the missed target's standard.
PROPOSED_TITLE: Final = "Missed in {}: "
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
class Entry:
    """The changeable part of a register entry; `history` as stored: {"at": ISO instant, "status", "note"}."""

    status: str
    owner: str | None
    due: date | None
    history: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class RequestedChange:
    """What a change asks for; None leaves that field as it is."""

    status: str | None = None
    owner: str | None = None
    due: date | None = None
    note: str | None = None


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    status: str
    note: str | None

    def stored(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "status": self.status, "note": self.note}


@dataclass(frozen=True)
class EntryChanged:
    """An entry after a change: `fields` are the ones the change sets (owner and due when asked for; status and
    history when it records a history entry); `completed` when it became done now (its after-value is measured)."""

    entry: Entry
    recorded: HistoryEntry | None
    fields: dict[str, Any]
    completed: bool


def change_entry(entry: Entry, requested: RequestedChange, now: datetime) -> EntryChanged:
    """Apply `requested` to `entry` at `now`. A new status must be allowed after the current one (`NEXT`), else
    TransitionRefused; a new status or a note records a history entry (a note alone records the status unchanged).
    """
    status = requested.status or entry.status
    check_transition(entry.status, status)
    fields: dict[str, Any] = {}
    if requested.owner is not None:
        fields["owner"] = requested.owner
    if requested.due is not None:
        fields["due"] = requested.due
    recorded = None
    history = entry.history
    if status != entry.status or requested.note:
        recorded = HistoryEntry(now, status, requested.note)
        history = (*entry.history, recorded.stored())
        fields["status"] = status
        fields["history"] = list(history)
    changed = Entry(status, fields.get("owner", entry.owner), fields.get("due", entry.due), history)
    return EntryChanged(changed, recorded, fields, completed=status == "done" and entry.status != "done")


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
            PROPOSED_TITLE.format(period_label) + r.standard,
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
