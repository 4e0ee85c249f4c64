"""Event contracts of DESIGN.md section 2: the CloudEvent envelope and the data of every event type.

Models are frozen and accept only aware datetimes. The envelope keeps unknown CloudEvent extension
attributes (CloudEvents allows them); `data` is validated per `type` by `parse_data`.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
)

TICKET_EVENT: Final = "itsm.ticket.v1"
AVAILABILITY_EVENT: Final = "itsm.availability.v1"
MEASUREMENT_EVENT: Final = "itsm.measurement.v1"
MAINTENANCE_EVENT: Final = "itsm.maintenance.v1"
FEEDBACK_EVENT: Final = "itsm.feedback.v1"
CLOCK_EVENT: Final = "sla.clock.v1"
SLO_STATUS_EVENT: Final = "slo.status.v1"
SLO_ALERT_EVENT: Final = "slo.alert.v1"
REPORT_PUBLISHED_EVENT: Final = "report.published.v1"
API_KEY_EVENT: Final = "tenant.apikey.v1"
CALENDAR_EVENT: Final = "sla.calendar.v1"

TicketAction = Literal[
    "created", "updated", "agent_replied", "customer_replied", "resolved", "reopened", "closed", "cancelled"
]
TicketStatus = Literal[
    "new", "open", "in_progress", "pending_customer", "pending_vendor", "on_hold", "resolved", "closed", "cancelled"
]
TicketKind = Literal["incident", "service_request", "problem", "change"]
ClockTransitionName = Literal[
    "started", "paused", "resumed", "warning", "breached", "met", "stopped_breached", "cancelled", "recalculated"
]
ClockState = Literal["running", "paused", "met", "breached", "cancelled"]
# What an API key may do (docs/security.md, "Scoped API keys"); a key announced without scopes has them all.
ApiScope = Literal["ingest", "read", "config", "admin"]
API_SCOPES: Final[tuple[ApiScope, ...]] = ("ingest", "read", "config", "admin")

TICKET_ACTIONS: Final = frozenset(TicketAction.__args__)  # type: ignore[attr-defined]
TICKET_STATUSES: Final = frozenset(TicketStatus.__args__)  # type: ignore[attr-defined]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


NonBlank = Annotated[str, AfterValidator(_not_blank), Field(max_length=512)]


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TicketSnapshotData(_Contract):
    """`itsm.ticket.v1`: the full ticket after a change, plus what happened."""

    ticket_id: NonBlank
    action: TicketAction
    kind: TicketKind
    service: NonBlank
    customer: NonBlank
    priority: NonBlank
    status: TicketStatus
    assignment_group: str | None = None
    assignee: str | None = None
    title: str | None = Field(default=None, max_length=4096)
    attributes: dict[str, JsonValue] = Field(default_factory=dict)


class AvailabilityData(_Contract):
    service: NonBlank
    component: NonBlank
    state: Literal["up", "degraded", "down"]


class MeasurementData(_Contract):
    """A good/total window, or a single sample (`value`) at the event time."""

    service: NonBlank
    sli: NonBlank
    window_start: AwareDatetime | None = None
    window_end: AwareDatetime | None = None
    good: int | None = Field(default=None, ge=0)
    total: int | None = Field(default=None, ge=0)
    value: float | None = None


class MaintenanceData(_Contract):
    service: NonBlank
    window_id: NonBlank
    start: AwareDatetime
    end: AwareDatetime
    status: Literal["scheduled", "cancelled"]


class FeedbackData(_Contract):
    ticket_id: NonBlank
    service: NonBlank
    score: int = Field(ge=0)
    scale: int = Field(gt=0)
    comment: str | None = None


class RetractedTransition(_Contract):
    transition: ClockTransitionName
    at: AwareDatetime
    threshold: int | None = None


class ClockTransitionData(_Contract):
    """`sla.clock.v1`: one clock transition with the clock's state right after it."""

    ticket_id: str
    policy_id: str
    policy_version: int
    agreement: Literal["SLA", "OLA", "UC"]
    metric: str
    cycle: int
    transition: ClockTransitionName
    state: ClockState
    breached: bool
    target_seconds: int
    elapsed_seconds: int
    remaining_seconds: int
    percent: float
    started_at: AwareDatetime | None
    due_at: AwareDatetime | None
    breached_at: AwareDatetime | None
    stopped_at: AwareDatetime | None
    threshold: int | None = None
    # Extension: on `recalculated`, the earlier transition a late event proved wrong.
    retracts: RetractedTransition | None = None
    # Extension: the engine's publication number within the cycle (1, 2, ...): the highest is the cycle's current
    # state whatever the arrival order; absent from producers older than it (docs/clocks.md).
    sequence: int | None = None
    service: str
    customer: str
    priority: str
    kind: str
    calendar: str


class SloStatusData(_Contract):
    """`slo.status.v1` (DESIGN 2.5): one SLO evaluation; budgets in the unit of `good`/`total`."""

    slo_id: NonBlank
    service: NonBlank
    window_start: AwareDatetime
    window_end: AwareDatetime
    sli_value: float | None
    objective: float
    good: float = Field(ge=0)
    total: float = Field(ge=0)
    error_budget_total: float
    error_budget_remaining: float
    burn_rates: dict[str, float | None] = Field(default_factory=dict)


class SloAlertData(_Contract):
    """`slo.alert.v1` (DESIGN 2.5): a burn-rate, budget or no-data alert changing state."""

    slo_id: NonBlank
    alert: Literal["page", "ticket", "budget_exhausted", "no_data"]
    state: Literal["firing", "resolved"]
    burn_rate: float | None = None
    windows: JsonValue = None


class ReportPublishedData(_Contract):
    """`report.published.v1` (DESIGN 2.5); `revision` and `amends` extend it for amendments."""

    report_id: NonBlank
    period_start: AwareDatetime
    period_end: AwareDatetime
    scope: dict[str, str | None]
    links: dict[str, str]
    revision: int = 0
    amends: str | None = None


class ApiKeyData(_Contract):
    """`tenant.apikey.v1` (an extension of the contract): how intake tells the other services of a key."""

    key_id: str
    tenant_id: str
    key_hash: str
    status: Literal["active", "revoked"]
    # Additive fields: an announcement from before scopes grants every scope, as keys did then.
    scopes: tuple[ApiScope, ...] = API_SCOPES
    signature: str | None = Field(default=None, description="intake's Ed25519 signature (slm_shared.signing)")


class CalendarData(_Contract):
    """`sla.calendar.v1` (an extension of the contract): one business calendar of an applied bundle version.

    The definition as `slm_shared.business_time.CalendarConfig` holds it: `hours` has seven entries, Monday
    first, each a list of [start, end) seconds after local midnight; `extra_workdays` maps a date to the weekday
    (0 = Monday) whose hours it is worked with. Sizes are not bounded here: a consumer refuses a definition
    larger than it keeps, with that reason, rather than dropping it as malformed.
    """

    calendar_id: NonBlank
    bundle_version: int = Field(ge=1)
    timezone: NonBlank
    hours: tuple[tuple[tuple[int, int], ...], ...] = Field(min_length=7, max_length=7)
    holidays_country: str | None = None
    holidays_subdivision: str | None = None
    extra_holidays: tuple[date, ...] = ()
    extra_workdays: tuple[tuple[date, int], ...] = ()


DATA_MODELS: Final[dict[str, type[BaseModel]]] = {
    TICKET_EVENT: TicketSnapshotData,
    AVAILABILITY_EVENT: AvailabilityData,
    MEASUREMENT_EVENT: MeasurementData,
    MAINTENANCE_EVENT: MaintenanceData,
    FEEDBACK_EVENT: FeedbackData,
    CLOCK_EVENT: ClockTransitionData,
    SLO_STATUS_EVENT: SloStatusData,
    SLO_ALERT_EVENT: SloAlertData,
    REPORT_PUBLISHED_EVENT: ReportPublishedData,
    API_KEY_EVENT: ApiKeyData,
    CALENDAR_EVENT: CalendarData,
}


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 envelope in JSON structured mode with the `tenantid` extension."""

    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"]
    id: NonBlank
    source: NonBlank
    type: NonBlank
    time: AwareDatetime
    tenantid: NonBlank
    subject: str | None = None
    datacontenttype: str | None = None
    data: dict[str, JsonValue]

    @property
    def dedup_key(self) -> tuple[str, str, str]:
        return (self.tenantid, self.source, self.id)

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class InvalidEvent(ValueError):
    """Raised with a reason that names the field and what was wrong with it."""


def describe_validation_error(error: ValidationError, prefix: str = "") -> str:
    parts = []
    for item in error.errors():
        location = ".".join(str(p) for p in item["loc"])
        parts.append(f"{prefix}{location}: {item['msg']}" if location else f"{prefix}{item['msg']}")
    return "; ".join(parts)


def parse_data(event: CloudEvent) -> BaseModel:
    """Validate `data` against the model of the event's `type`."""
    model = DATA_MODELS.get(event.type)
    if model is None:
        raise InvalidEvent(f"type: unknown event type {event.type!r}")
    try:
        return model.model_validate(event.data)
    except ValidationError as error:
        raise InvalidEvent(describe_validation_error(error, "data.")) from error


def parse_cloudevent(raw: bytes | str | dict[str, Any]) -> CloudEvent:
    """Parse and validate an envelope and its data; raises `InvalidEvent` with a precise reason."""
    return parse_cloudevent_and_data(raw)[0]


def parse_cloudevent_and_data(raw: bytes | str | dict[str, Any]) -> tuple[CloudEvent, BaseModel]:
    """`parse_cloudevent`, also returning the validated `data` model, so a consumer validates it only once.

    Bytes and text are first validated straight from JSON (pydantic-core's parser: a few times faster than
    `json.loads` then validation, which was most of a consumer's cost per record). Anything that path refuses
    (invalid JSON, UTF-16, lone surrogates, a bad field) goes the `json.loads` way, so what is accepted and the
    reason given for what is not stay exactly as before.
    """
    if isinstance(raw, bytes | str):
        try:
            event = CloudEvent.model_validate_json(raw)
        except ValidationError:
            pass
        else:
            return event, parse_data(event)
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InvalidEvent(f"body: not valid JSON ({error})") from error
    else:
        document = raw
    if not isinstance(document, dict):
        raise InvalidEvent("body: a CloudEvent must be a JSON object")
    try:
        event = CloudEvent.model_validate(document)
    except ValidationError as error:
        raise InvalidEvent(describe_validation_error(error)) from error
    return event, parse_data(event)


def make_event(
    *,
    event_id: str,
    source: str,
    event_type: str,
    time: datetime,
    tenant_id: str,
    subject: str | None,
    data: BaseModel,
) -> CloudEvent:
    return CloudEvent(
        specversion="1.0",
        id=event_id,
        source=source,
        type=event_type,
        time=time,
        tenantid=tenant_id,
        subject=subject,
        datacontenttype="application/json",
        data=data.model_dump(mode="json"),
    )
