"""Native webhook adapters: an upstream service desk's payload -> the canonical ticket CloudEvent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from intake.domain.adapters.jira import jira_event
from intake.domain.adapters.servicenow import servicenow_event
from intake.domain.adapters.zendesk import zendesk_event
from intake.domain.mapping import System, TicketMapping

Adapter = Callable[[Any, TicketMapping], dict[str, Any]]

ADAPTERS: Final[dict[System, Adapter]] = {
    "jira": jira_event,
    "servicenow": servicenow_event,
    "zendesk": zendesk_event,
}

__all__ = ["ADAPTERS", "Adapter", "jira_event", "servicenow_event", "zendesk_event"]
