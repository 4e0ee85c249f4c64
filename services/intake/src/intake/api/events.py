"""`POST /v1/events` (one CloudEvent or a batch) and `POST /v1/webhooks/{jira|servicenow|zendesk}`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse

from intake.api.common import (
    BATCH_CONTENT_TYPE,
    EVENT_CONTENT_TYPES,
    JSON_CONTENT_TYPES,
    Caller,
    EventsResponse,
    error_responses,
    read_limited,
    require_media_type,
)
from intake.domain import EventResult, Rejected, parse_json, split_json_array
from intake.domain.mapping import SYSTEMS, System
from intake.handlers import EventIntake
from intake.settings import IntakeSettings

_TIME = {"type": "string", "format": "date-time", "description": "RFC 3339 with an offset"}
CLOUDEVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A CloudEvents 1.0 event in structured JSON mode with the `tenantid` extension",
    "required": ["specversion", "id", "source", "type", "time", "data"],
    "properties": {
        "specversion": {"type": "string", "enum": ["1.0"]},
        "id": {"type": "string", "minLength": 1, "maxLength": 512},
        "source": {"type": "string", "minLength": 1, "maxLength": 512},
        "type": {"type": "string", "enum": ["itsm.ticket.v1", "itsm.availability.v1", "itsm.measurement.v1",
                                            "itsm.maintenance.v1", "itsm.feedback.v1"]},
        "time": _TIME,
        "tenantid": {"type": "string", "description": "optional; must be the API key's tenant"},
        "subject": {"type": "string"},
        "datacontenttype": {"type": "string", "enum": ["application/json"]},
        "data": {"type": "object"},
    },
}
TICKET_EXAMPLE = {
    "specversion": "1.0", "id": "evt-1042-1", "source": "jira://acme.atlassian.net", "type": "itsm.ticket.v1",
    "time": "2026-05-04T09:30:00+08:00", "tenantid": "acme", "subject": "INC-1042",
    "data": {"ticket_id": "INC-1042", "action": "created", "kind": "incident", "service": "email",
             "customer": "acme", "priority": "P2", "status": "new"},
}


def _events_body(max_batch: int) -> dict[str, Any]:
    single = {"schema": CLOUDEVENT_SCHEMA, "example": TICKET_EXAMPLE}
    return {"requestBody": {"required": True, "content": {
        "application/cloudevents+json": single,
        "application/json": single,
        BATCH_CONTENT_TYPE: {"schema": {"type": "array", "items": CLOUDEVENT_SCHEMA, "maxItems": max_batch},
                             "example": [TICKET_EXAMPLE]},
    }}}


WEBHOOK_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "description": "the system's native webhook payload"}},
}}}


def _single_response(result: EventResult) -> JSONResponse:
    code = status.HTTP_202_ACCEPTED
    if result.outcome == "rejected":
        code = status.HTTP_403_FORBIDDEN if result.code == "tenant_mismatch" else status.HTTP_400_BAD_REQUEST
    return JSONResponse(EventsResponse.of([result]).model_dump(mode="json"), status_code=code)


def _webhook_response(results: list[EventResult]) -> JSONResponse:
    """One event: as `POST /v1/events` answers one. Several (Zendesk audits): 202 unless every one was rejected."""
    if len(results) == 1:
        return _single_response(results[0])
    rejected = all(result.outcome == "rejected" for result in results)
    return JSONResponse(EventsResponse.of(results).model_dump(mode="json"),
                        status_code=status.HTTP_400_BAD_REQUEST if rejected else status.HTTP_202_ACCEPTED)


def events_router(
    intake: EventIntake, settings: IntakeSettings, caller: Callable[..., Awaitable[Caller]]
) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["events"])

    @router.post(
        "/events", status_code=status.HTTP_202_ACCEPTED, response_model=EventsResponse,
        responses={400: {"model": EventsResponse, "description": "not JSON, or the single event is rejected"},
                   **error_responses(401, 403, 413, 415, 429)},
        openapi_extra=_events_body(settings.max_batch_events),
    )
    async def post_events(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
        """Accept one CloudEvent (structured JSON) or a batch (`application/cloudevents-batch+json`).

        A batch answers 202 with `accepted | duplicate | rejected` and the reason per event: one bad event
        never fails the good ones beside it. A single event answers 202 when accepted or a duplicate, 400
        when rejected, 403 when it names another tenant.
        """
        found = require_media_type(request, (BATCH_CONTENT_TYPE, *EVENT_CONTENT_TYPES))
        body = await read_limited(request, settings.max_body_bytes)
        is_batch = found == BATCH_CONTENT_TYPE or (found != "application/cloudevents+json"
                                                   and body.lstrip()[:1] == b"[")
        try:
            if is_batch:
                items: list[tuple[Any, bytes | None]] = list(split_json_array(body))
            else:
                items = [(parse_json(body), body)]
        except Rejected as error:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, error.reason) from error
        if len(items) > settings.max_batch_events:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                                f"batch of {len(items)} events exceeds the limit of {settings.max_batch_events}")
        results = await intake.accept_batch(who.tenant_id, items)
        if not is_batch:
            return _single_response(results[0])
        return JSONResponse(EventsResponse.of(results).model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)

    def webhook(system: System) -> None:
        async def post_webhook(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
            require_media_type(request, JSON_CONTENT_TYPES)
            body = await read_limited(request, settings.max_body_bytes)
            return _webhook_response(await intake.accept_webhook(who.tenant_id, system, body))

        router.add_api_route(
            f"/webhooks/{system}", post_webhook, methods=["POST"], status_code=status.HTTP_202_ACCEPTED,
            response_model=EventsResponse, tags=["webhooks"], name=f"post_{system}_webhook",
            summary=f"Take a native {system} webhook",
            description=(f"The {system} payload becomes `itsm.ticket.v1` (and CSAT `itsm.feedback.v1`) events, "
                         f"mapped with the tenant's "
                         f"mapping (`/v1/mappings/{system}`); a redelivered webhook is a duplicate."),
            responses={400: {"model": EventsResponse, "description": "the payload cannot become a ticket event"},
                       **error_responses(401, 413, 415, 429)},
            openapi_extra=WEBHOOK_BODY,
        )

    for system in SYSTEMS:
        webhook(system)
    return router
