"""Per-tenant mapping of an upstream service desk's values onto the canonical ticket (DESIGN.md 2.1).

A tenant stores an override per system (`PUT /v1/mappings/{system}`); the effective mapping is the system's
defaults below with the override's entries laid over them (dictionaries merged key by key, other fields
replaced). Upstream values are matched case-insensitively and always kept in `data.attributes`.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from intake.domain.acceptance import check_values
from slm_shared.events import TicketKind, TicketStatus

System = Literal["jira", "servicenow", "zendesk"]
SYSTEMS: Final[tuple[System, ...]] = ("jira", "servicenow", "zendesk")

Path = str  # dotted path into the upstream payload, list indexes as numbers: "fields.components.0.name"


def _lower_keys(value: dict[str, Any]) -> dict[str, Any]:
    return {key.strip().lower(): item for key, item in value.items()}


class MappingOverride(BaseModel):
    """What a tenant may set; every field optional, absent = the system's default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    statuses: dict[str, TicketStatus] = Field(default_factory=dict, max_length=500)
    priorities: dict[str, str] = Field(default_factory=dict, max_length=500)
    kinds: dict[str, TicketKind] = Field(default_factory=dict, max_length=500)
    default_kind: TicketKind | None = None
    default_priority: str | None = Field(default=None, min_length=1, max_length=64)
    default_service: str | None = Field(default=None, min_length=1, max_length=256)
    default_customer: str | None = Field(default=None, min_length=1, max_length=256)
    service_field: Path | None = Field(default=None, min_length=1, max_length=256)
    customer_field: Path | None = Field(default=None, min_length=1, max_length=256)
    source: str | None = Field(default=None, min_length=1, max_length=256)

    _normalise = field_validator("statuses", "priorities", "kinds")(_lower_keys)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        """The same text and number rules as events (no U+0000, no lone surrogates): it is stored as JSON."""
        check_values(value)
        return value

    @field_validator("priorities")
    @classmethod
    def _priorities_not_blank(cls, value: dict[str, str]) -> dict[str, str]:
        for key, priority in value.items():
            if not key or not priority.strip() or len(priority) > 64:
                raise ValueError(f"priority mapping {key!r} -> {priority!r}: both must be non-blank")
        return value


class TicketMapping(BaseModel):
    """The effective mapping an adapter uses."""

    model_config = ConfigDict(frozen=True)

    statuses: dict[str, TicketStatus]
    priorities: dict[str, str]
    kinds: dict[str, TicketKind]
    default_kind: TicketKind = "incident"
    default_priority: str = "P3"
    default_service: str = "unknown"
    default_customer: str = "unknown"
    service_field: Path | None = None
    customer_field: Path | None = None
    source: str | None = None

    def with_override(self, override: MappingOverride) -> TicketMapping:
        merged: dict[str, Any] = self.model_dump()
        for name in ("statuses", "priorities", "kinds"):
            merged[name] = {**merged[name], **getattr(override, name)}
        for name, value in override.model_dump(exclude={"statuses", "priorities", "kinds"}).items():
            if value is not None:
                merged[name] = value
        return TicketMapping.model_validate(merged)

    def status_for(self, *candidates: str | None) -> TicketStatus | None:
        for candidate in candidates:
            if candidate is not None and (found := self.statuses.get(candidate.strip().lower())) is not None:
                return found
        return None

    def priority_for(self, *candidates: str | None) -> str:
        for candidate in candidates:
            if candidate is not None and (found := self.priorities.get(candidate.strip().lower())) is not None:
                return found
        return self.default_priority

    def kind_for(self, *candidates: str | None) -> TicketKind:
        for candidate in candidates:
            if candidate is not None and (found := self.kinds.get(candidate.strip().lower())) is not None:
                return found
        return self.default_kind


# Jira Service Management's default workflows (ITSM project template) and priority scheme.
JIRA_DEFAULTS: Final = TicketMapping(
    statuses={
        "open": "open",
        "new": "new",
        "to do": "new",
        "waiting for support": "open",
        "reopened": "open",
        "in progress": "in_progress",
        "work in progress": "in_progress",
        "escalated": "in_progress",
        "under investigation": "in_progress",
        "implementing": "in_progress",
        "waiting for customer": "pending_customer",
        "pending": "on_hold",
        "waiting for approval": "on_hold",
        "awaiting approval": "on_hold",
        "waiting for vendor": "pending_vendor",
        "on hold": "on_hold",
        "resolved": "resolved",
        "done": "resolved",
        "completed": "resolved",
        "closed": "closed",
        "canceled": "cancelled",
        "cancelled": "cancelled",
        "declined": "cancelled",
    },
    priorities={"highest": "P1", "high": "P2", "medium": "P3", "low": "P4", "lowest": "P4"},
    kinds={
        "incident": "incident",
        "service request": "service_request",
        "service request with approvals": "service_request",
        "[system] service request": "service_request",
        "[system] incident": "incident",
        "problem": "problem",
        "[system] problem": "problem",
        "change": "change",
        "[system] change": "change",
        "task": "service_request",
    },
    service_field="fields.components.0.name",
)

# ServiceNow's incident table: state codes (and on-hold reasons), priority 1-5, task classes.
SERVICENOW_DEFAULTS: Final = TicketMapping(
    statuses={
        "1": "new",
        "2": "in_progress",
        "3": "on_hold",
        "3/1": "pending_customer",
        "3/4": "pending_vendor",
        "6": "resolved",
        "7": "closed",
        "8": "cancelled",
        "new": "new",
        "in progress": "in_progress",
        "on hold": "on_hold",
        "resolved": "resolved",
        "closed": "closed",
        "canceled": "cancelled",
        "cancelled": "cancelled",
    },
    priorities={
        "1": "P1",
        "2": "P2",
        "3": "P3",
        "4": "P4",
        "5": "P4",
        "1 - critical": "P1",
        "2 - high": "P2",
        "3 - moderate": "P3",
        "4 - low": "P4",
        "5 - planning": "P4",
    },
    kinds={
        "incident": "incident",
        "sc_req_item": "service_request",
        "sc_request": "service_request",
        "sc_task": "service_request",
        "problem": "problem",
        "change_request": "change",
    },
    service_field="business_service",
    customer_field="company",
)

# Zendesk's ticket statuses, priorities and ticket types.
ZENDESK_DEFAULTS: Final = TicketMapping(
    statuses={
        "new": "new",
        "open": "open",
        "pending": "pending_customer",
        "hold": "on_hold",
        "on-hold": "on_hold",
        "solved": "resolved",
        "closed": "closed",
        "deleted": "cancelled",
    },
    priorities={"urgent": "P1", "high": "P2", "normal": "P3", "low": "P4"},
    kinds={"incident": "incident", "problem": "problem", "question": "service_request", "task": "service_request"},
    customer_field="detail.organization_id",
)

DEFAULTS: Final[dict[System, TicketMapping]] = {
    "jira": JIRA_DEFAULTS,
    "servicenow": SERVICENOW_DEFAULTS,
    "zendesk": ZENDESK_DEFAULTS,
}


def effective_mapping(system: System, override: MappingOverride | None) -> TicketMapping:
    defaults = DEFAULTS[system]
    return defaults if override is None else defaults.with_override(override)
