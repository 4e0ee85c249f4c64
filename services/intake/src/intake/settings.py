"""Intake's settings: env prefix INTAKE_, nested groups with `__` (INTAKE_KAFKA__BOOTSTRAP_SERVERS)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import AwareDatetime, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from slm_shared import topics
from slm_shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INTAKE_", env_nested_delimiter="__", extra="ignore")

    max_batch_events: int = Field(default=1000, ge=1, le=10_000)
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    # Below Kafka's default 1 MiB message limit, so the outbox relay can always publish an accepted event.
    max_event_bytes: int = Field(default=512 * 1024, ge=1024, le=1_000_000)
    max_future_skew_seconds: int = Field(default=300, ge=0, le=86400, description="reject events timed further ahead")
    earliest_event_time: AwareDatetime = Field(
        default=datetime(1970, 1, 1, tzinfo=UTC), description="reject events (and times in data) before this"
    )
    latest_event_time: AwareDatetime = Field(
        default=datetime(2200, 1, 1, tzinfo=UTC), description="reject events (and times in data) at or after this"
    )
    # The longest report (400 days) ending a year ago: older events no longer count anywhere.
    max_event_age_days: float = Field(
        default=800, gt=0, le=36_500, description="reject events timed longer ago than this before intake's clock"
    )
    ingest_topic: str = Field(default=topics.INGEST, description="topic upstream systems publish CloudEvents to")
    dead_letter_topic: str = Field(default=topics.INGEST_DLQ, description="where invalid ingest records go")
    output_topic_prefix: str = Field(
        default="", description="prepended to the output topics (benches, isolated test runs); empty in production"
    )
    rate_limit_per_second: float = Field(default=50.0, ge=0, description="requests per second per API key; 0 = off")
    rate_limit_burst: int = Field(default=100, ge=1, description="requests a key may make at once")
    archive_retention_days: float = Field(default=90, gt=0, description="raw and canonical events kept for replay")
    dedup_retention_days: float = Field(default=400, gt=0, description="how long a retried event is a duplicate")
    rejected_retention_days: float = Field(default=30, gt=0)
    purge_interval_seconds: float = Field(default=3600, gt=0)
    replay_page_size: int = Field(default=1000, ge=1, le=10_000)
    import_max_document_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1024, description="largest JSON document `slm-intake import` reads whole"
    )
    replay_max_http_events: int = Field(default=100_000, ge=1, description="larger replays: `slm-intake replay`")

    key_signing_key: SecretStr | None = Field(
        default=None, description="base64 Ed25519 private key signing the API key announcements (docs/security.md)"
    )
    webhook_secret_keys: SecretStr | None = Field(
        default=None, description="Fernet keys (comma-separated, the first encrypts) for the stored webhook secrets"
    )
    webhook_replay_window_seconds: int = Field(
        default=300, ge=1, le=86400, description="a signed webhook timestamped further from now is refused"
    )
    webhook_delivery_retention_days: float = Field(
        default=7, gt=0, description="how long a signed delivery is remembered to refuse its replay"
    )
    webhook_rotation_grace_hours: float = Field(
        default=24, ge=0, description="how long a rotated webhook secret stays valid beside the new one"
    )

    def output_topic(self, topic: str) -> str:
        return f"{self.output_topic_prefix}{topic}"
