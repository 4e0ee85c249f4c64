"""Intake's HTTP routes."""

from intake.api.admin import admin_router
from intake.api.common import Caller, Callers, authenticated
from intake.api.events import events_router

__all__ = ["Caller", "Callers", "admin_router", "authenticated", "events_router"]
