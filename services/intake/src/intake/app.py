"""Intake's composition root."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from intake import tables
from intake.api import events_router
from intake.handlers import EventIntake
from intake.settings import IntakeSettings
from slm_shared import topics
from slm_shared.runtime import ServiceRuntime

SERVICE = "intake"
ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def create_app(settings: IntakeSettings) -> FastAPI:
    runtime = ServiceRuntime(
        service=SERVICE, settings=settings, alembic_ini=ALEMBIC_INI, api_key_table=tables.api_keys,
        topics=topics.ALL_TOPICS,
    )
    intake = EventIntake(runtime.sessions, settings.max_future_skew_seconds)
    return runtime.http_app(title="intake", routers=[events_router(intake, settings)])
