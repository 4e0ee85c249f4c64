"""Reporting's settings: env prefix REPORTING_, nested groups with `__`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from slm_shared.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REPORTING_", env_nested_delimiter="__", extra="ignore")

    period_close_enabled: bool = Field(default=True, description="run the period-close loop in this replica")
    period_close_interval_seconds: float = Field(default=60.0, gt=0, description="seconds between close passes")
    amendment_quiet_seconds: float = Field(
        default=300.0, ge=0, description="wait this long after the last late event before amending a period"
    )
    public_base_url: str = Field(default="", description="prefix of the links in report.published.v1")
    dashboard_refresh_seconds: int = Field(default=30, ge=2, le=3600)
    consumer_offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest", description="where a new consumer group starts; `latest` only for throwaway groups"
    )
    read_model_batch_records: int = Field(
        default=1000,
        ge=1,
        description="records per read-model batch (one transaction): most of its cost is per "
        "statement, not per record, so a larger batch applies a backlog faster",
    )
    max_report_days: int = Field(default=400, ge=1, description="longest period a report may cover")
    dashboard_session_seconds: int = Field(
        default=8 * 3600, ge=1, le=7 * 86400, description="a dashboard sign-in ends this long after it was made"
    )
    dashboard_session_idle_seconds: int = Field(
        default=1800, ge=1, description="a dashboard sign-in ends after this long without a request"
    )
    dashboard_trusted_origins: str = Field(
        default="",
        description="comma-separated origins (https://host[:port]) besides the request's own and "
        "public_base_url's that may post the dashboard's sign-in and sign-out forms",
    )

    notifications_enabled: bool = Field(default=True, description="run the notification delivery loop here")
    notification_secret_keys: SecretStr | None = Field(
        default=None,
        description="Fernet keys (comma-separated, the first encrypts) for the stored notification "
        "channel secrets (webhook signing secrets, PagerDuty routing keys, SMTP passwords)",
    )
    notification_poll_seconds: float = Field(
        default=0.25,
        gt=0,
        description="seconds between delivery passes: a notification goes out at most this "
        "long after it is due, plus the time to send",
    )
    notification_batch: int = Field(
        default=50,
        ge=1,
        le=5000,
        description="notifications claimed, sent and recorded per transaction: a replica "
        "killed mid-batch leaves at most this many to be sent again (same webhook-id / dedup key)",
    )
    notification_concurrency: int = Field(
        default=4,
        ge=1,
        le=1000,
        description="sends in flight per batch: raise it for distant receivers (to overlap "
        "their latency); httpx's connection pool costs more CPU per request the more wait in it: on loopback 2 "
        "in flight send 538/s, 8 send 374/s, 50 send 278/s (bench/notifications)",
    )
    notification_batches_in_flight: int = Field(
        default=2,
        ge=1,
        le=16,
        description="batches of one tenant claimed and sent side by side (each holds a "
        "database connection): one batch's round trips and commit overlap another's sends",
    )
    notification_http_client: Literal["h11", "httpx"] = Field(
        default="h11",
        description="h11: the lean HTTP/1.1 client (reporting.notifications.http11, about a fifth of "
        "httpx's CPU "
        "a request); httpx: for HTTP(S)_PROXY from the environment",
    )
    notification_max_attempts: int = Field(default=8, ge=1, le=100, description="tries before a notification is dead")
    notification_timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="per send")
    notification_channel_rate_per_second: float = Field(
        default=0.0,
        ge=0,
        description="sends per second per channel and tenant (0: unlimited); over it a "
        "notification waits for the next pass",
    )
    notification_max_age_seconds: float = Field(
        default=86400.0,
        gt=0,
        description="an event received longer than this after its instant is history (a "
        "replay, a rebuilt read model): it notifies nobody, its notifications are logged as suppressed (stale)",
    )
    notification_late_after_seconds: float = Field(
        default=60.0,
        ge=0,
        description="an event received longer than this after its instant is late (reporting "
        "was down or lagging): notified only if its cycle had not moved on and the condition still holds when "
        "sent, the message saying how late",
    )
    notification_late_settle_seconds: float = Field(
        default=30.0,
        ge=0,
        description="a late event's notification waits this long after its arrival, so the "
        "cycle's later events in the same backlog are applied before it is checked and sent",
    )
    explained_clock_base_url: str = Field(
        default="",
        description="the sla-engine's public URL: messages link to its explained clock (`/v1/tickets/{id}/clocks?at=`)",
    )
