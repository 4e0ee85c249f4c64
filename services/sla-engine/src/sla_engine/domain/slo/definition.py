"""SLO definitions (DESIGN.md section 3, `slos:`): the SLI, the objective, the window and the budgeting method.

Rules:
- `objective` is a percent written as in the bundle (`99.9`) and kept as `Decimal('99.9')`: YAML floats are
  read through their shortest text form, so tier edges such as 99.9% compare exactly.
- `sli.type` is `availability` (from the `itsm.availability.v1` state timeline; `degraded_weight` in [0, 1] is
  the share of degraded time that counts as downtime: 0 = degraded counts as up, 1 = as down) or `ratio`
  (good/total from `itsm.measurement.v1` windows of the named `sli`) or `threshold` (`itsm.measurement.v1`
  samples of `sli`, good when `value <op> threshold`, e.g. `{type: threshold, sli: latency_ms, op: "<=",
  value: 300}`; each sample is one event of its minute).
- `sli.type: ticket_sla` (`{type: ticket_sla, policy: gold-incidents, metric: resolution, priorities: [P2]}`)
  counts the service's ticket clocks that stopped met (good) or breached, so "95 % of P2 resolved within
  target per month" is an occurrences SLO like any other. Tickets are sparse: `no_data` is off unless
  `no_data_after` is given.
- `sli.calendar` (availability SLIs only) names a bundle calendar as the agreed service hours: only time
  inside it counts, in the SLI and in the budget. Calendar hours are whole minutes, so a minute is in or out.
  (`calendar` at the SLO level, the earlier spelling, means the same.)
- `sli.maintenance` (availability SLIs only): recurring planned maintenance windows, each an RFC 5545 RRULE
  expanded in local wall time of its time zone from `dtstart`, lasting `duration` (elapsed time); they are
  excluded like scheduled `itsm.maintenance.v1` windows (see `sla_engine.domain.slo.maintenance`).
- `window` is `{rolling: 28d}` or `{calendar: week|month|quarter, timezone: <IANA>}` (default UTC).
- `budgeting` is `occurrences` (default), `timeslices` or `ratio_timeslices`. Timeslices need
  `timeslice_target` (a percent): a slice is good when its good/total meets it. Ratio timeslices (OpenSLO
  `RatioTimeslices`) score each slice with its good/total ratio. Both take `timeslice` (default 1m: whole
  minutes dividing a day) and `timeslice_min_events` (default 1): a slice with fewer events is not judged.
- `no_data_after` (default 1h): the `no_data` alert fires when the last such span held no data
  (`no_data_after_seconds == 0`: never).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from sla_engine.domain.slo.maintenance import RecurringMaintenance

CalendarUnit = Literal["week", "month", "quarter"]
CALENDAR_UNITS: tuple[CalendarUnit, ...] = ("week", "month", "quarter")
Budgeting = Literal["occurrences", "timeslices", "ratio_timeslices"]
BUDGETING: tuple[Budgeting, ...] = ("occurrences", "timeslices", "ratio_timeslices")
HUNDRED = Decimal(100)


@dataclass(frozen=True)
class AvailabilitySli:
    degraded_weight: Decimal = Decimal(0)
    calendar: str | None = None
    maintenance: tuple[RecurringMaintenance, ...] = ()


@dataclass(frozen=True)
class RatioSli:
    sli: str


ThresholdOperator = Literal["<=", "<", ">=", ">"]
THRESHOLD_OPERATORS: tuple[ThresholdOperator, ...] = ("<=", "<", ">=", ">")


@dataclass(frozen=True)
class ThresholdSli:
    """Samples of `sli` (e.g. latency_ms) are good when `value <op> threshold` holds."""

    sli: str
    operator: ThresholdOperator
    threshold: Decimal

    @property
    def rollup_key(self) -> str:
        """The rollup series of this threshold: `threshold:latency_ms<=300`."""
        return f"threshold:{self.sli}{self.operator}{self.threshold}"

    def meets(self, value: Decimal) -> bool:
        if self.operator == "<=":
            return value <= self.threshold
        if self.operator == "<":
            return value < self.threshold
        if self.operator == ">=":
            return value >= self.threshold
        return value > self.threshold


@dataclass(frozen=True)
class TicketSlaSli:
    """Ticket SLA attainment: clocks of `policy`/`metric` (optionally only `priorities`) of the SLO's service
    that stopped in the window; met ones are good. Counted in the minute the clock stopped."""

    policy: str
    metric: str
    priorities: tuple[str, ...] = ()


Sli = AvailabilitySli | RatioSli | ThresholdSli | TicketSlaSli


@dataclass(frozen=True)
class RollingWindow:
    seconds: int


@dataclass(frozen=True)
class CalendarWindow:
    unit: CalendarUnit
    timezone: str = "UTC"


Window = RollingWindow | CalendarWindow


@dataclass(frozen=True)
class SloDefinition:
    id: str
    service: str
    sli: Sli
    objective: Decimal
    window: Window
    budgeting: Budgeting = "occurrences"
    timeslice_target: Decimal | None = None
    timeslice_min_events: int = 1
    no_data_after_seconds: int = 3_600
    timeslice_seconds: int = 60

    @property
    def calendar(self) -> str | None:
        """The agreed service hours (a bundle calendar name) of an availability SLI; None = all the time."""
        return self.sli.calendar if isinstance(self.sli, AvailabilitySli) else None

    @property
    def sliced(self) -> bool:
        return self.budgeting != "occurrences"

    @property
    def target(self) -> Decimal:
        """The objective as a ratio: 99.9 -> 0.999."""
        return self.objective / HUNDRED

    @property
    def timeslice_ratio(self) -> Decimal:
        return (self.timeslice_target if self.timeslice_target is not None else self.objective) / HUNDRED
