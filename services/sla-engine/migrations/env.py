"""Alembic environment for sla_engine's database (URL from SLA_ENGINE_DATABASE_URL)."""

from sla_engine.settings import SlaEngineSettings
from sla_engine.tables import metadata
from slm_shared.migrations import run_migrations

run_migrations(metadata, SlaEngineSettings().database_url.get_secret_value())  # type: ignore[call-arg]
