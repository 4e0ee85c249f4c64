"""Multi-window, multi-burn-rate alerts (Google SRE Workbook, chapter 5), budget exhaustion and no data.

Rules:
- A rule fires when the burn rate over both its long and its short lookback is at least its factor. The
  factor is the budget share the rule guards, scaled to the SLO window: share x window / long lookback.
  For a 30-day window that is the Workbook's 14.4 (2% in 1h), 6 (5% in 6h), 3 (10% in 1d), 1 (10% in 3d);
  for 28 days 13.44, 5.6, 2.8 and 0.9333... . Factors are exact fractions; nothing is rounded before comparing.
- `page` fires while either page rule holds, `ticket` while either ticket rule holds.
- `budget_exhausted` fires while the remaining budget is at or below zero with data in the window.
- `no_data` fires when no minute in the last `no_data_after` held any data (never when it is 0).
- An alert is reported once when it starts firing and once when it resolves: the caller passes the alerts
  firing so far and stores the ones returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Literal

from sla_engine.domain.slo.evaluation import LOOKBACKS, SloStatus
from sla_engine.domain.slo.windows import nominal_seconds

if TYPE_CHECKING:
    from sla_engine.domain.slo.definition import SloDefinition

AlertName = Literal["page", "ticket", "budget_exhausted", "no_data"]
ALERT_NAMES: tuple[AlertName, ...] = ("page", "ticket", "budget_exhausted", "no_data")


@dataclass(frozen=True)
class BurnRule:
    alert: Literal["page", "ticket"]
    long: str
    short: str
    budget_share: Fraction


# Workbook table 5-8: 2% of budget in 1h / 5% in 6h page; 10% in 1d / 10% in 3d open a ticket.
BURN_RULES: tuple[BurnRule, ...] = (
    BurnRule("page", "1h", "5m", Fraction(2, 100)),
    BurnRule("page", "6h", "30m", Fraction(5, 100)),
    BurnRule("ticket", "1d", "2h", Fraction(10, 100)),
    BurnRule("ticket", "3d", "6h", Fraction(10, 100)),
)


def burn_factor(rule: BurnRule, window_seconds: int) -> Fraction:
    return rule.budget_share * window_seconds / LOOKBACKS[rule.long]


@dataclass(frozen=True)
class AlertTransition:
    slo_id: str
    alert: AlertName
    state: Literal["firing", "resolved"]
    burn_rate: Decimal | None
    windows: Mapping[str, object]


def firing_alerts(slo: SloDefinition, status: SloStatus) -> dict[AlertName, AlertTransition]:
    """Every alert whose condition holds in `status`, with what it fired on."""
    firing: dict[AlertName, AlertTransition] = {}
    window = nominal_seconds(slo.window)
    target = slo.target
    for rule in BURN_RULES:
        if rule.alert in firing:
            continue
        factor = burn_factor(rule, window)
        long_rate = status.spans[rule.long].burn_rate(target)
        short_rate = status.spans[rule.short].burn_rate(target)
        if long_rate is not None and short_rate is not None and long_rate >= factor and short_rate >= factor:
            firing[rule.alert] = AlertTransition(
                slo.id,
                rule.alert,
                "firing",
                _decimal(long_rate),
                {
                    "long": rule.long,
                    "short": rule.short,
                    "factor": str(_decimal(factor)),
                    "long_burn_rate": str(_decimal(long_rate)),
                    "short_burn_rate": str(_decimal(short_rate)),
                },
            )
    if status.total > 0 and status.error_budget_remaining <= 0:
        firing["budget_exhausted"] = AlertTransition(
            slo.id,
            "budget_exhausted",
            "firing",
            None,
            {"window_start": status.window_start.isoformat(), "window_end": status.window_end.isoformat()},
        )
    quiet_since = status.at - timedelta(seconds=slo.no_data_after_seconds)
    if slo.no_data_after_seconds > 0 and (
        status.last_data_minute is None or status.last_data_minute < quiet_since - timedelta(minutes=1)
    ):
        firing["no_data"] = AlertTransition(
            slo.id, "no_data", "firing", None, {"no_data_after_seconds": slo.no_data_after_seconds}
        )
    return firing


def alert_transitions(
    slo: SloDefinition, status: SloStatus, firing_before: frozenset[AlertName]
) -> tuple[frozenset[AlertName], list[AlertTransition]]:
    """The alerts firing now and the transitions since `firing_before` (each fire and resolve exactly once)."""
    now = firing_alerts(slo, status)
    transitions = [now[name] for name in ALERT_NAMES if name in now and name not in firing_before]
    transitions += [
        AlertTransition(slo.id, name, "resolved", None, {})
        for name in ALERT_NAMES
        if name in firing_before and name not in now
    ]
    return frozenset(now), transitions


def _decimal(value: Fraction) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal("0.0001"))
