"""Topic names of DESIGN.md section 1-2, the topic each event type travels on, and the Kafka keys that keep one
ticket or service on one partition."""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from slm_shared.events import (
    API_KEY_EVENT,
    AVAILABILITY_EVENT,
    CALENDAR_EVENT,
    CLOCK_EVENT,
    FEEDBACK_EVENT,
    MAINTENANCE_EVENT,
    MEASUREMENT_EVENT,
    REPORT_PUBLISHED_EVENT,
    SLO_ALERT_EVENT,
    SLO_STATUS_EVENT,
    TICKET_EVENT,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

INGEST: Final = "itsm.ingest.v1"
INGEST_DLQ: Final = "itsm.ingest.dlq.v1"
TICKETS: Final = "itsm.tickets.v1"
SIGNALS: Final = "itsm.signals.v1"
FEEDBACK: Final = "itsm.feedback.v1"
CLOCKS: Final = "sla.clocks.v1"
SLO_STATUS: Final = "slo.status.v1"
SLO_ALERTS: Final = "slo.alerts.v1"
REPORTS: Final = "reports.v1"
# Extension: API key lifecycle, so every service validates keys the same way without reading intake's db.
TENANTS: Final = "itsm.tenants.v1"
# Extension: the business calendars of each applied bundle, so reporting counts working time as the engine does.
CALENDARS: Final = "sla.calendars.v1"

ALL_TOPICS: Final = (
    INGEST,
    INGEST_DLQ,
    TICKETS,
    SIGNALS,
    FEEDBACK,
    CLOCKS,
    SLO_STATUS,
    SLO_ALERTS,
    REPORTS,
    TENANTS,
    CALENDARS,
)
# Topics whose newest record per key is the state (Kafka log compaction): a consumer group that starts late still
# reads every calendar in force, and an old definition goes once a newer one of its key is written.
COMPACTED_TOPICS: Final = frozenset({CALENDARS})

# The one event type -> topic map (DESIGN.md section 2): intake routes accepted events by it, and whoever writes a
# type elsewhere (tests, tools) looks its topic up here rather than keeping a copy that could drift.
# Read-only, so no importer can reroute a type for everyone else.
TOPIC_OF: Final[Mapping[str, str]] = MappingProxyType(
    {
        TICKET_EVENT: TICKETS,
        AVAILABILITY_EVENT: SIGNALS,
        MEASUREMENT_EVENT: SIGNALS,
        MAINTENANCE_EVENT: SIGNALS,
        FEEDBACK_EVENT: FEEDBACK,
        CLOCK_EVENT: CLOCKS,
        SLO_STATUS_EVENT: SLO_STATUS,
        SLO_ALERT_EVENT: SLO_ALERTS,
        REPORT_PUBLISHED_EVENT: REPORTS,
        API_KEY_EVENT: TENANTS,
        CALENDAR_EVENT: CALENDARS,
    }
)


def ticket_key(tenant_id: str, ticket_id: str) -> str:
    return f"{tenant_id}/{ticket_id}"


def service_key(tenant_id: str, service: str) -> str:
    return f"{tenant_id}/{service}"


def calendar_key(tenant_id: str, calendar_id: str) -> str:
    return f"{tenant_id}/{calendar_id}"
