"""The notification decision: which notifications a clock transition, SLO alert or publication makes due.

Pure, time passed in: from one event and the tenant's policy, which notifications are due and when, and when a
ladder's last level repeats. What becomes of them until they go out is domain.notification_sending; corrections
after a recalculation are domain.notification_corrections.

Rules:
- A transition notifies through each rule whose triggers name it and whose filters match it. `recalculated`
  never notifies (a correction is not news), nor does anything else the policy does not name.
- Each ladder level is one notification, due `after` the transition instant, deferred to the rule's next
  working minute; with `repeat_every` the last level repeats (levels len(ladder), len(ladder)+1, ...) from the
  instant the previous one was due, until the clock stops, pauses, or someone acknowledges.
- The idempotency key is (clock cycle, trigger, rule, level): a redelivered or replayed transition plans the
  same keys again, which the store refuses, so nothing is ever sent twice for one of them.
- A stop (`met`, `stopped_breached`, `cancelled`) also plans a `resolve` for each PagerDuty or Alertmanager rule
  the cycle matches, with the same dedup key as its triggers; it is sent only if a trigger was.
- A lead-time trigger (`before_due: 30m`) is planned when a running clock's transition with a due instant
  arrives (`started`, `resumed`, `recalculated`): due when the remaining business time reaches the lead, counted
  with the clock's calendar (as domain.live brings figures forward; 24x7: `due_at - lead`), deferred by the
  rule's notification calendar like any trigger. Its key is (cycle, trigger, rule, level) like the others: a
  later resume or recalculation plans the same keys again, and the store re-arms them if they were not sent.
  Nothing is planned when the lead is already reached at the transition, nor for a calendar reporting does not
  hold. At sending time it is suppressed unless the clock still runs towards the same due instant.
- A published report (`report.published`) notifies each rule naming it whose service/customer filters match the
  published scope, once per report revision and rule (its first level only: a publication is a fact).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from reporting.domain.live import Calendars, working_calendar
from reporting.domain.notification_fields import parse_duration
from reporting.domain.notification_policy import REPORT_PUBLISHED, Level, NotificationPolicy, Rule
from slm_shared.business_time import BusinessCalendar, from_epoch

STOPS = frozenset({"met", "stopped_breached", "cancelled"})
BEFORE_DUE = "before_due"
# The transitions after which a running clock's due instant is (again) known: lead-time triggers are planned then.
LEAD_TRANSITIONS = frozenset({"started", "resumed", "recalculated"})
RESOLVE = "resolve"
CORRECTION = "correction"
# Facts, not conditions: nothing to escalate, and true whenever they are sent.
FINAL = frozenset({"stopped_breached", REPORT_PUBLISHED, CORRECTION})


@dataclass(frozen=True)
class ClockFacts:
    """What a clock transition says, as the decision needs it."""

    ticket_id: str
    policy_id: str
    metric: str
    cycle: int
    transition: str
    at: datetime  # the transition instant (event time: for warning/breached the computed crossing instant)
    threshold: int | None
    agreement: str
    priority: str
    service: str
    customer: str
    assignment_group: str | None = None
    # The clock right after the transition, for lead-time triggers (None/0: not known, nothing planned).
    state: str | None = None
    due_at: datetime | None = None
    elapsed_seconds: int = 0
    target_seconds: int = 0
    calendar: str = "24x7"
    policy_version: int = 0

    @property
    def cycle_key(self) -> str:
        return f"clock/{self.ticket_id}/{self.policy_id}/{self.metric}/{self.cycle}"

    def filter_values(self) -> dict[str, str | None]:
        return {
            "agreement": self.agreement,
            "policy": self.policy_id,
            "metric": self.metric,
            "priority": self.priority,
            "service": self.service,
            "customer": self.customer,
            "assignment_group": self.assignment_group,
        }


@dataclass(frozen=True)
class AlertFacts:
    """An SLO alert changing state."""

    slo_id: str
    service: str
    alert: str
    state: str
    at: datetime

    @property
    def cycle_key(self) -> str:
        # One alert episode per firing instant: a re-fire later is a new episode, a redelivery the same one.
        return f"slo/{self.slo_id}/{self.alert}/{self.at.isoformat()}"

    def filter_values(self) -> dict[str, str | None]:
        return {"service": self.service, "policy": self.slo_id}


@dataclass(frozen=True)
class ReportFacts:
    """A report frozen and published (`report.published.v1`): one notification per revision and rule."""

    report_id: str
    service: str | None  # the published scope
    customer: str | None
    at: datetime  # the publication instant

    @property
    def cycle_key(self) -> str:
        return f"report/{self.report_id}"

    def filter_values(self) -> dict[str, str | None]:
        return {"service": self.service, "customer": self.customer}


Facts = ClockFacts | AlertFacts | ReportFacts


@dataclass(frozen=True)
class Planned:
    """One notification to store: sent at `due_at` unless its condition no longer holds then."""

    key: str  # idempotency key, unique per tenant
    ladder: str  # the cycle+trigger+rule every level of one ladder shares (acknowledging stops them all)
    rule_id: str
    trigger: str
    level: int
    event_at: datetime
    due_at: datetime
    channel: str
    recipients: tuple[str, ...]


def plan(facts: Facts, policy: NotificationPolicy, calendars: Calendars | None = None) -> list[Planned]:
    """Every notification the event makes due under `policy`, every ladder level of it. `calendars`: the
    business calendars reporting holds (domain.live), for lead-time triggers."""
    planned: list[Planned] = []
    for rule in policy.rules:
        if not rule.match.matches(facts.filter_values()):
            continue
        if isinstance(facts, ClockFacts):
            planned.extend(_lead_times(rule, facts, calendars or {}))
            if facts.transition == "recalculated":
                continue  # a correction is not news (corrections() decides whether to say it)
        trigger = _trigger_named(rule, facts)
        if trigger is not None:
            planned.extend(_ladder(rule, facts, trigger))
        if (
            isinstance(facts, ClockFacts)
            and facts.transition in STOPS
            and _pages(rule, policy)
            and any(t.event != "slo_alert" for t in rule.triggers)
        ):
            planned.append(_one(rule, facts, RESOLVE, 0, facts.at, rule.channel, rule.recipients))
    return planned


def lead_instant(
    calendar: BusinessCalendar, as_of: datetime, elapsed_seconds: int, target_seconds: int, lead: timedelta
) -> datetime | None:
    """The instant a clock running since `as_of` (with `elapsed_seconds` then) has `lead` of business time left,
    or None when it has no more than that at `as_of`. Whole seconds from `as_of`'s whole second, as the engine
    counts (DESIGN 4.10); on 24x7 that is `due_at - lead`."""
    ahead = target_seconds - elapsed_seconds - int(lead.total_seconds())
    if ahead <= 0:
        return None
    return calendar.deadline_after(from_epoch(math.floor(as_of.timestamp())), ahead)


def _lead_times(rule: Rule, facts: ClockFacts, calendars: Calendars) -> list[Planned]:
    if facts.transition not in LEAD_TRANSITIONS or facts.state != "running" or facts.due_at is None:
        return []
    calendar = working_calendar(facts.calendar, facts.policy_version, calendars)
    planned: list[Planned] = []
    for trigger in rule.triggers:
        if trigger.event != BEFORE_DUE or calendar is None:
            continue
        at = lead_instant(calendar, facts.at, facts.elapsed_seconds, facts.target_seconds, trigger.lead)
        if at is not None:
            planned.extend(_ladder(rule, facts, trigger.name, at))
    return planned


def _trigger_named(rule: Rule, facts: Facts) -> str | None:
    for trigger in rule.triggers:
        if isinstance(facts, ReportFacts):
            if trigger.event == "report_published":
                return trigger.name
        elif isinstance(facts, AlertFacts):
            if trigger.event == "slo_alert" and trigger.alert == facts.alert and facts.state == "firing":
                return trigger.name
        elif trigger.event == facts.transition and (trigger.event != "warning" or trigger.threshold == facts.threshold):
            return trigger.name
    return None


def _pages(rule: Rule, policy: NotificationPolicy) -> bool:
    """Channels that hold an open incident or alert until told it is over: PagerDuty, Alertmanager."""
    channel = policy.channel(rule.channel)
    return channel is not None and channel.type in ("pagerduty", "alertmanager")


def _ladder(rule: Rule, facts: Facts, trigger: str, at: datetime | None = None) -> list[Planned]:
    """`at`: the trigger instant when it is not the event's (a lead time's), from which the levels count."""
    levels = rule.ladder[:1] if trigger in FINAL else rule.ladder
    start = facts.at if at is None else at
    return [
        _one(
            rule,
            facts,
            trigger,
            index,
            start + level.delay,
            level.channel or rule.channel,
            level.recipients if level.recipients is not None else rule.recipients,
            start,
        )
        for index, level in enumerate(levels)
    ]


def _one(
    rule: Rule,
    facts: Facts,
    trigger: str,
    level: int,
    at: datetime,
    channel: str,
    recipients: list[str],
    event_at: datetime | None = None,
) -> Planned:
    ladder = f"{facts.cycle_key}/{trigger}/{rule.id}"
    due = rule.calendar.next_working_instant(at) if rule.calendar and trigger != RESOLVE else at
    return Planned(
        key=f"{ladder}/{level}",
        ladder=ladder,
        rule_id=rule.id,
        trigger=trigger,
        level=level,
        event_at=facts.at if event_at is None else event_at,
        due_at=due,
        channel=channel,
        recipients=tuple(recipients),
    )


def repeat_after(rule: Rule, sent: Planned) -> Planned | None:
    """The next repeat of a ladder whose level `sent` just went out: due `repeat_every` after `sent` was due
    (before deferral by the calendar, so repeats keep their rhythm), or None when the rule does not repeat,
    the level is not the last, or the repeats are used up."""
    escalation = rule.escalation
    if escalation is None or escalation.repeat_every is None or sent.trigger in (*FINAL, RESOLVE):
        return None
    last = len(escalation.levels) - 1
    if sent.level < last or sent.level - last >= escalation.max_repeats:
        return None
    every = parse_duration(escalation.repeat_every)
    undeferred = sent.event_at + escalation.levels[-1].delay + every * (sent.level - last + 1)
    level: Level = escalation.levels[-1]
    due = rule.calendar.next_working_instant(undeferred) if rule.calendar else undeferred
    return Planned(
        key=f"{sent.ladder}/{sent.level + 1}",
        ladder=sent.ladder,
        rule_id=rule.id,
        trigger=sent.trigger,
        level=sent.level + 1,
        event_at=sent.event_at,
        due_at=due,
        channel=level.channel or rule.channel,
        recipients=tuple(level.recipients if level.recipients is not None else rule.recipients),
    )
