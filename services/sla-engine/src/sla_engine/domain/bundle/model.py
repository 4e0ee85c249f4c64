"""The bundle's model: policies and their metric rules, SLO entries, the bundle, its issues and durations."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sla_engine.domain.bundle.index import PolicyIndex
from slm_shared.business_time import TWENTY_FOUR_SEVEN, BusinessCalendar, CalendarConfig

if TYPE_CHECKING:
    from sla_engine.domain.timeline import TicketSnapshot

OnReopen = Literal["resume", "new_cycle", "ignore"]
ON_REOPEN: tuple[OnReopen, ...] = ("resume", "new_cycle", "ignore")
AGREEMENTS = ("SLA", "OLA", "UC")
MATCH_FIELDS = ("kind", "service", "customer", "priority", "assignment_group", "assignee")
"""Snapshot fields a policy can match on; `attributes.<key>` matches an attribute as text."""

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNIT_SECONDS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


# Ten years: far beyond any service level target, and far from where datetime arithmetic overflows.
MAX_DURATION_SECONDS = 3660 * 86400


def parse_duration(text: str) -> int:
    """Seconds of a duration such as `4h30m`; raises ValueError with a readable reason."""
    shown = repr(text) if len(text) <= 40 else f"{text[:37]!r}…"
    match = _DURATION.match(text.strip()) if text.strip() and len(text) <= 64 else None
    if match is None:
        raise ValueError(f"{shown} is not a duration: use d, h, m, s in that order, e.g. 15m, 4h30m, 1d, 90s")
    seconds = sum(int(part) * unit for part, (_, unit) in zip(match.groups(), _UNIT_SECONDS, strict=True) if part)
    if seconds <= 0:
        raise ValueError(f"{shown} is not a positive duration")
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"{shown} is longer than {MAX_DURATION_SECONDS // 86400}d, the longest a bundle takes")
    return seconds


def format_duration(seconds: int) -> str:
    """The canonical spelling of a positive duration: `86400` -> `1d`, `16200` -> `4h30m`."""
    parts = []
    rest = seconds
    for unit, size in _UNIT_SECONDS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


@dataclass(frozen=True)
class BundleIssue:
    path: str
    line: int | None
    message: str


class BundleError(ValueError):
    """An invalid bundle; `errors` lists every problem found, in source order."""

    def __init__(self, errors: list[BundleIssue]) -> None:
        self.errors = sorted(errors, key=lambda issue: (issue.line or 0, issue.path))
        super().__init__(
            "\n".join(
                f"{issue.path or '<bundle>'} (line {issue.line or '?'}): {issue.message}" for issue in self.errors
            )
        )


@dataclass(frozen=True)
class MetricRule:
    """One clock of a policy, e.g. `response` or `resolution` (DESIGN.md section 4)."""

    metric: str
    calendar: str
    targets: Mapping[str, int]
    pause_statuses: tuple[str, ...] = ()
    stop_actions: tuple[str, ...] = ()
    stop_statuses: tuple[str, ...] = ()
    cancel_statuses: tuple[str, ...] = ()
    on_reopen: OnReopen = "ignore"
    warn_at: tuple[int, ...] = ()
    retroactive: bool = False


@dataclass(frozen=True)
class Policy:
    """An agreement's rules for the tickets it matches: every `match` key must hold; a list means any of."""

    id: str
    name: str
    agreement: Literal["SLA", "OLA", "UC"]
    match: Mapping[str, tuple[str, ...]]
    metrics: tuple[MetricRule, ...]

    def matches(self, snapshot: TicketSnapshot) -> bool:
        return all(snapshot.field_value(key) in values for key, values in self.match.items())


@dataclass(frozen=True)
class SloConfig:
    """An SLO definition, kept as written (in JSON-able form) for the SLO evaluator."""

    id: str
    service: str
    raw: Mapping[str, Any]


@dataclass(frozen=True)
class Bundle:
    calendars: tuple[CalendarConfig, ...] = ()
    policies: tuple[Policy, ...] = ()
    slos: tuple[SloConfig, ...] = ()
    _built: Mapping[str, BusinessCalendar] = field(init=False, compare=False, repr=False)
    policy_index: PolicyIndex = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        built = {config.name: BusinessCalendar(config) for config in self.calendars}
        object.__setattr__(self, "_built", built)
        object.__setattr__(self, "policy_index", PolicyIndex(self.policies))

    def calendar(self, name: str) -> BusinessCalendar:
        """The named calendar; `24x7` is always there. Raises KeyError for an unknown name."""
        if name == TWENTY_FOUR_SEVEN.name:
            return TWENTY_FOUR_SEVEN
        return self._built[name]

    def policy(self, policy_id: str) -> Policy:
        """The policy with that id. Raises KeyError for an unknown id."""
        for policy in self.policies:
            if policy.id == policy_id:
                return policy
        raise KeyError(policy_id)
