"""`POST /v1/events` (one CloudEvent or a batch), `POST /v1/webhooks/{jira|servicenow|zendesk}` (bearer key
with the `ingest` scope, as DESIGN.md has it) and `POST /v1/webhooks/{system}/{tenant}` (the system's own
signature with the tenant's webhook secret: Jira's admin webhooks cannot send a bearer header)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse

from intake.api.common import (
    BATCH_CONTENT_TYPE,
    EVENT_CONTENT_TYPES,
    JSON_CONTENT_TYPES,
    EventsResponse,
    IngestCaller,
    error_responses,
    read_limited,
    require_media_type,
)
from intake.domain import EventResult, Rejected, parse_json, split_json_array
from intake.domain.mapping import SYSTEMS, System
from intake.domain.signatures import SIGNATURE_HEADERS, verify
from intake.handlers.intake import EventIntake
from intake.keys import TENANT_ID
from intake.ports import IntakeUnitsOfWork
from intake.settings import IntakeSettings
from slm_shared.auth import ApiKeyAuthenticator, client_address
from slm_shared.time_source import Now

_TIME = {"type": "string", "format": "date-time", "description": "RFC 3339 with an offset"}
CLOUDEVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A CloudEvents 1.0 event in structured JSON mode with the `tenantid` extension",
    "required": ["specversion", "id", "source", "type", "time", "data"],
    "properties": {
        "specversion": {"type": "string", "enum": ["1.0"]},
        "id": {"type": "string", "minLength": 1, "maxLength": 512},
        "source": {"type": "string", "minLength": 1, "maxLength": 512},
        "type": {
            "type": "string",
            "enum": [
                "itsm.ticket.v1",
                "itsm.availability.v1",
                "itsm.measurement.v1",
                "itsm.maintenance.v1",
                "itsm.feedback.v1",
            ],
        },
        "time": _TIME,
        "tenantid": {"type": "string", "description": "optional; must be the API key's tenant"},
        "subject": {"type": "string"},
        "datacontenttype": {"type": "string", "enum": ["application/json"]},
        "data": {"type": "object"},
    },
}
TICKET_EXAMPLE = {
    "specversion": "1.0",
    "id": "evt-1042-1",
    "source": "jira://acme.atlassian.net",
    "type": "itsm.ticket.v1",
    "time": "2026-05-04T09:30:00+08:00",
    "tenantid": "acme",
    "subject": "INC-1042",
    "data": {
        "ticket_id": "INC-1042",
        "action": "created",
        "kind": "incident",
        "service": "email",
        "customer": "acme",
        "priority": "P2",
        "status": "new",
    },
}


def _events_body(max_batch: int) -> dict[str, Any]:
    single = {"schema": CLOUDEVENT_SCHEMA, "example": TICKET_EXAMPLE}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/cloudevents+json": single,
                "application/json": single,
                BATCH_CONTENT_TYPE: {
                    "schema": {"type": "array", "items": CLOUDEVENT_SCHEMA, "maxItems": max_batch},
                    "example": [TICKET_EXAMPLE],
                },
            },
        }
    }


WEBHOOK_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object", "description": "the system's native webhook payload"}},
        },
    }
}


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
    return JSONResponse(
        EventsResponse.of(results).model_dump(mode="json"),
        status_code=status.HTTP_400_BAD_REQUEST if rejected else status.HTTP_202_ACCEPTED,
    )


SIGNATURE_REFUSALS = {
    "missing_signature": "the signature header is missing",
    "bad_signature": "the signature does not verify with this tenant's webhook secret for this system",
    "bad_timestamp": "the signature timestamp is missing or not Unix seconds / RFC 3339",
    "stale_timestamp": "the signature timestamp is outside the replay window",
}


def events_router(
    intake: EventIntake,
    units: IntakeUnitsOfWork,
    settings: IntakeSettings,
    now: Now,
) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["events"])

    @router.post(
        "/events",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=EventsResponse,
        responses={
            400: {"model": EventsResponse, "description": "not JSON, or the single event is rejected"},
            **error_responses(401, 403, 413, 415, 429),
        },
        openapi_extra=_events_body(settings.max_batch_events),
    )
    async def post_events(request: Request, who: IngestCaller) -> JSONResponse:
        """Accept one CloudEvent (structured JSON) or a batch (`application/cloudevents-batch+json`).

        A batch answers 202 with `accepted | duplicate | rejected` and the reason per event: one bad event
        never fails the good ones beside it. A single event answers 202 when accepted or a duplicate, 400
        when rejected, 403 when it names another tenant.
        """
        found = require_media_type(request, (BATCH_CONTENT_TYPE, *EVENT_CONTENT_TYPES))
        body = await read_limited(request, settings.max_body_bytes)
        is_batch = found == BATCH_CONTENT_TYPE or (
            found != "application/cloudevents+json" and body.lstrip()[:1] == b"["
        )
        try:
            if is_batch:
                items: list[tuple[Any, bytes | None]] = list(split_json_array(body))
            else:
                items = [(parse_json(body), body)]
        except Rejected as error:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, error.reason) from error
        if len(items) > settings.max_batch_events:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"batch of {len(items)} events exceeds the limit of {settings.max_batch_events}",
            )
        results = await intake.accept_batch(who.tenant_id, items)
        if not is_batch:
            return _single_response(results[0])
        return JSONResponse(EventsResponse.of(results).model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)

    def webhook(system: System) -> None:
        async def post_webhook(request: Request, who: IngestCaller) -> JSONResponse:
            require_media_type(request, JSON_CONTENT_TYPES)
            body = await read_limited(request, settings.max_body_bytes)
            return _webhook_response(await intake.accept_webhook(who.tenant_id, system, body))

        router.add_api_route(
            f"/webhooks/{system}",
            post_webhook,
            methods=["POST"],
            status_code=status.HTTP_202_ACCEPTED,
            response_model=EventsResponse,
            tags=["webhooks"],
            name=f"post_{system}_webhook",
            summary=f"Take a native {system} webhook",
            description=(
                f"The {system} payload becomes `itsm.ticket.v1` (and CSAT `itsm.feedback.v1`) events, "
                f"mapped with the tenant's "
                f"mapping (`/v1/mappings/{system}`); a redelivered webhook is a duplicate."
            ),
            responses={
                400: {"model": EventsResponse, "description": "the payload cannot become a ticket event"},
                **error_responses(401, 413, 415, 429),
            },
            openapi_extra=WEBHOOK_BODY,
        )

    window = timedelta(seconds=settings.webhook_replay_window_seconds)

    def signed_webhook(system: System) -> None:
        signature_header, timestamp_header = SIGNATURE_HEADERS[system]

        async def post_signed_webhook(request: Request, tenant: str) -> JSONResponse:
            authenticator: ApiKeyAuthenticator = request.app.state.authenticator
            client = client_address(request)
            authenticator.refuse_if_throttled(client)
            require_media_type(request, JSON_CONTENT_TYPES)
            body = await read_limited(request, settings.max_body_bytes)
            at = now()
            # An unknown tenant looks like a bad signature: the answer must not tell which tenants exist.
            secrets: Sequence[bytes] = []
            if TENANT_ID.fullmatch(tenant):
                async with units() as uow:
                    secrets = await uow.webhook_secrets.valid(tenant, system, at)
            verdict = verify(system, secrets, request.headers, body, at, window)
            if not verdict.ok or verdict.delivery is None:
                reason = verdict.reason or "bad_signature"
                if reason != "missing_signature":  # an unsigned request guesses nothing
                    authenticator.record_failure(client, f"webhook_{reason}")
                raise HTTPException(status.HTTP_401_UNAUTHORIZED, SIGNATURE_REFUSALS[reason])
            async with units() as uow:
                seen = await uow.webhook_secrets.seen(tenant, system, verdict.delivery)
            if seen:
                raise HTTPException(status.HTTP_409_CONFLICT, "this signed delivery was already taken (replay)")
            results = await intake.accept_webhook(tenant, system, body)
            if any(result.outcome != "rejected" for result in results):
                async with units() as uow:
                    await uow.webhook_secrets.remember(tenant, system, verdict.delivery, at)
                    await uow.commit()
            return _webhook_response(results)

        signed_by = f"`{signature_header}`" + (f" and `{timestamp_header}`" if timestamp_header else "")
        router.add_api_route(
            f"/webhooks/{system}/{{tenant}}",
            post_signed_webhook,
            methods=["POST"],
            status_code=status.HTTP_202_ACCEPTED,
            response_model=EventsResponse,
            tags=["webhooks"],
            name=f"post_signed_{system}_webhook",
            summary=f"Take a native {system} webhook signed with the tenant's webhook secret",
            description=(
                f"No API key: the delivery is authenticated by {signed_by}, HMAC-SHA256 with the "
                f"tenant's {system} webhook secret (docs/security.md). A delivery already taken is "
                "refused (409); otherwise as the bearer route."
            ),
            responses={
                400: {"model": EventsResponse, "description": "the payload cannot become a ticket event"},
                **error_responses(401, 409, 413, 415, 429),
            },
            openapi_extra=WEBHOOK_BODY,
        )

    for system in SYSTEMS:
        webhook(system)
        signed_webhook(system)
    return router
