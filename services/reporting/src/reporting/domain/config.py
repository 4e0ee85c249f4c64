"""A tenant's reporting configuration: time zone, period, attainment targets, what to publish at close."""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

RagStatus = Literal["green", "amber", "red", "no_data"]
MAX_PUBLISH_SCOPES = 100
MAX_DASHBOARD_HORIZON_SECONDS = 31 * 86400


def _storable(value: str) -> str:
    """The configuration is stored as PostgreSQL JSON, which cannot hold U+0000."""
    if "\x00" in value:
        raise ValueError("must not contain U+0000")
    return value


Name = Annotated[str, Field(min_length=1, max_length=512), AfterValidator(_storable)]
Text = Annotated[str, Field(min_length=1, max_length=4000), AfterValidator(_storable)]


class PublishScope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    service: Name | None = None
    customer: Name | None = None

    @property
    def key(self) -> str:
        return f"service={self.service or '*'};customer={self.customer or '*'}"


Kpi = Literal[
    "csat_mean",
    "csat_satisfied",
    "reopen_rate",
    "first_contact_resolution",
    "backlog_age_p90",
    "breach_rate",
    "sla_attainment",
    "slo_attainment",
]
Comparison = Literal[">=", "<="]
# The comparison a target gets when it names none: more is better for these, less for the rest.
HIGHER_IS_BETTER: frozenset[str] = frozenset(
    {"csat_mean", "csat_satisfied", "first_contact_resolution", "sla_attainment", "slo_attainment"}
)
MAX_QUALITY_TARGETS = 100


class QualityTarget(BaseModel):
    """A service quality target (ISO/IEC 20000-1 8.3.3): a KPI of a scope, its threshold and comparison.

    Thresholds are percent for rates and for `csat_mean` (mean score / scale, so 4.2 of 5 is 84), seconds for
    `backlog_age_p90`, the SLI in percent for `slo_attainment`. Below `min_sample` answers (or resolutions,
    cycles, open tickets) the period is `insufficient_data`, not judged.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Name
    kpi: Kpi
    threshold: float = Field(ge=0, le=1e12, allow_inf_nan=False)
    comparison: Comparison | None = None
    service: Name | None = None
    customer: Name | None = None
    agreement: Name = "SLA"  # breach_rate, sla_attainment
    metric: Name | None = None  # breach_rate, sla_attainment: one metric, or every metric
    slo_id: Name | None = None  # slo_attainment
    min_sample: int = Field(default=1, ge=1, le=1_000_000)

    @property
    def effective_comparison(self) -> Comparison:
        if self.comparison is not None:
            return self.comparison
        return ">=" if self.kpi in HIGHER_IS_BETTER else "<="


class WorkloadLimit(BaseModel):
    """The workload an agreement was priced for (`workload_limit`): tickets created per period in a scope.
    A target missed while the workload was over its limit is an exception in the service review."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service: Name | None = None
    customer: Name | None = None
    tickets_per_period: int = Field(gt=0, le=100_000_000)


class ReportingConfig(BaseModel):
    """Defaults are what a tenant gets before it configures anything (UTC, monthly, 95 % with 5 points amber)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = Field(default="UTC", max_length=64)
    period: Literal["monthly", "weekly"] = "monthly"
    default_target_percent: float = Field(default=95.0, ge=0, le=100)
    metric_targets_percent: dict[Name, float] = Field(
        default_factory=dict,
        max_length=50,
        description="attainment target per metric, e.g. {response: 95, resolution: 90}",
    )
    amber_margin_percent: float = Field(
        default=5.0, ge=0, le=100, description="points below target that are still amber"
    )
    close_delay_seconds: int = Field(
        default=3600, ge=0, le=31 * 86400, description="wait after a period ends before freezing its snapshot"
    )
    publish_scopes: list[PublishScope] = Field(
        default_factory=lambda: [PublishScope()],
        max_length=MAX_PUBLISH_SCOPES,
        description="one snapshot per scope at each close",
    )
    dashboard_horizon_seconds: int = Field(
        default=4 * 3600,
        gt=0,
        le=MAX_DASHBOARD_HORIZON_SECONDS,
        description="running clocks due within this long are 'about to breach'",
    )
    csat_satisfied_ratio: float = Field(
        default=0.8, gt=0, le=1, description="an answer is satisfied when score/scale reaches this (4 of 5)"
    )
    quality_targets: list[QualityTarget] = Field(
        default_factory=list,
        max_length=MAX_QUALITY_TARGETS,
        description="service quality targets, evaluated per period",
    )
    complaint_below_ratio: float = Field(
        default=0.6, gt=0, le=1, description="an answer with score/scale under this is a complaint (1, 2 of 5)"
    )
    csat_min_response_rate: float = Field(
        default=0.1, ge=0, le=1, description="below this response rate CSAT is flagged as not representative"
    )
    csat_min_answers: int = Field(default=10, ge=0, description="below this many answers CSAT is flagged too")
    language: Literal["en", "zh"] = Field(
        default="en", description="language of rendered reviews when neither ?lang= nor Accept-Language decides"
    )
    workload_limits: list[WorkloadLimit] = Field(default_factory=list, max_length=MAX_QUALITY_TARGETS)
    experience_min_satisfied_percent: float = Field(
        default=80.0, ge=0, le=100, description="a green SLA with CSAT satisfied under this is flagged"
    )
    experience_max_reopen_percent: float = Field(
        default=10.0, ge=0, le=100, description="a green SLA with a reopen rate over this is flagged"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown IANA time zone {value!r}") from error
        return value

    @field_validator("metric_targets_percent")
    @classmethod
    def _percentages(cls, value: dict[str, float]) -> dict[str, float]:
        for metric, percent in value.items():
            if not 0 <= percent <= 100:
                raise ValueError(f"target for {metric!r} must be within 0..100")
        return value

    def target_for(self, metric: str) -> float:
        return self.metric_targets_percent.get(metric, self.default_target_percent)
