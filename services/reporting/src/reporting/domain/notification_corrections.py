"""Corrections after a recalculation: which rules' sent notifications a recalculated clock contradicts.

A `recalculated` transition notifies nobody, except through a rule with `on_recalculation: correct` that already
sent something about the cycle: when the recalculation changed what the latest sent notification said (the breach
retracted, the due instant moved, the state changed, or its very transition retracted), one `correction` with
before and after is planned per (cycle, rule, recalculation), the recalculation being the engine's publication
number in the cycle, so a redelivery or a republication plans the same key again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from reporting.domain.notifications import CORRECTION, ClockFacts, Planned

if TYPE_CHECKING:
    from reporting.domain.notification_policy import NotificationPolicy


@dataclass(frozen=True)
class Said:
    """What a notification said about its clock: the figures of the event it was planned from."""

    trigger: str
    state: str
    breached: bool
    due_at: datetime | None
    threshold: int | None = None


@dataclass(frozen=True)
class Retracted:
    transition: str
    at: datetime
    threshold: int | None


def changes(before: Said, after: Said, retracted: Retracted | None) -> list[str]:
    """What a recalculation changed in what was said, in a fixed order; empty: nothing to correct."""
    changed = []
    if (
        retracted is not None
        and retracted.transition == before.trigger.split(":")[0]
        and retracted.threshold == before.threshold
    ):
        changed.append("retracted")
    if before.breached != after.breached:
        changed.append("breached")
    if before.due_at != after.due_at:
        changed.append("due_at")
    if before.state != after.state:
        changed.append("state")
    return changed


def corrections(
    facts: ClockFacts,
    recalculation: str,
    after: Said,
    retracted: Retracted | None,
    sent: dict[str, Said],
    policy: NotificationPolicy,
) -> list[tuple[Planned, list[str]]]:
    """One correction per rule with `on_recalculation: correct` whose latest notification of the cycle (`sent`,
    by rule id: sent, or a correction on its way) the recalculation contradicts, with the fields that changed.
    `recalculation` identifies the recalculation within the cycle (the engine's sequence number)."""
    planned = []
    for rule in policy.rules:
        if rule.on_recalculation != "correct" or rule.id not in sent:
            continue
        changed = changes(sent[rule.id], after, retracted)
        if not changed:
            continue
        ladder = f"{facts.cycle_key}/{CORRECTION}/{rule.id}"
        due = rule.calendar.next_working_instant(facts.at) if rule.calendar else facts.at
        planned.append(
            (
                Planned(
                    key=f"{ladder}/{recalculation}",
                    ladder=ladder,
                    rule_id=rule.id,
                    trigger=CORRECTION,
                    level=0,
                    event_at=facts.at,
                    due_at=due,
                    channel=rule.channel,
                    recipients=tuple(rule.recipients),
                ),
                changed,
            )
        )
    return planned
