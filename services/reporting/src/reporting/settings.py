"""Reporting's settings: env prefix REPORTING_, nested groups with `__`."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from slm_shared.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REPORTING_", env_nested_delimiter="__", extra="ignore")
