"""Alembic environment for reporting's database (URL from REPORTING_DATABASE_URL)."""

from reporting.settings import ReportingSettings
from reporting.tables import metadata
from slm_shared.migrations import run_migrations

run_migrations(metadata, ReportingSettings().database_url.get_secret_value())  # type: ignore[call-arg]
