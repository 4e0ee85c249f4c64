"""Alembic environment for intake's database (URL from INTAKE_DATABASE_URL)."""

from intake.settings import IntakeSettings
from intake.tables import metadata
from slm_shared.migrations import run_migrations

run_migrations(metadata, IntakeSettings().database_url.get_secret_value())  # type: ignore[call-arg]
