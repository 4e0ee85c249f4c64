"""Intake's HTTP routes."""

from intake.api.admin import admin_router
from intake.api.events import events_router

__all__ = ["admin_router", "events_router"]
