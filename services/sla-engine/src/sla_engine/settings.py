"""The sla-engine's settings: env prefix SLA_ENGINE_, nested groups with `__`."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from slm_shared.settings import ServiceSettings


class SlaEngineSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SLA_ENGINE_", env_nested_delimiter="__", extra="ignore")

    ticket_batch_records: int = Field(
        default=1000,
        ge=1,
        description="ticket snapshots per consumer batch (one transaction, one statement): the "
        "store path's cost is mostly per batch, so a large batch drains a backlog faster",
    )
    timer_batch_size: int = Field(default=200, ge=1, description="due tickets reconciled per round (transaction)")
    reconcile_tickets_per_tenant: int = Field(
        default=50, ge=1, description="due tickets of one tenant per round: the others' turn comes in the same round"
    )
    reconcile_round_seconds: float = Field(
        default=0.2, gt=0, description="evaluation time after which a round commits; the rest stay due"
    )
    reconcile_processes: int = Field(
        default=1,
        ge=0,
        le=1,
        description="worker processes evaluating tickets (1: beside the event loop, on another core; 0: a thread)",
    )
    reconcile_rounds_in_flight: int = Field(
        default=2, ge=1, description="reconcile rounds at once: one does database work while another is evaluated"
    )
    timer_max_sleep_seconds: float = Field(default=0.5, gt=0, description="longest wait between timer scans")
    slo_status_interval_seconds: float = Field(
        default=10.0, ge=0, description="least time between two slo.status.v1 events of one SLO"
    )
    slo_evaluation_interval_seconds: float = Field(
        default=10.0, gt=0, description="period of the SLO evaluation loop (ongoing outages, no_data)"
    )
    slo_sample_retention_days: int = Field(
        default=100,
        ge=1,
        description="days raw threshold samples are kept for backfill: a quarter window plus the 3d lookback",
    )
    clock_census_interval_seconds: float = Field(
        default=30.0, gt=0, description="period of the count behind the slm_clocks gauge"
    )
