"""Intake's settings: env prefix INTAKE_, nested groups with `__` (INTAKE_KAFKA__BOOTSTRAP_SERVERS)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from slm_shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INTAKE_", env_nested_delimiter="__", extra="ignore")

    max_batch_events: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_future_skew_seconds: int = Field(default=300, ge=0, description="reject events timed further ahead")
