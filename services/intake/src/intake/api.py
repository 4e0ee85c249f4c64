"""Intake's HTTP routes: `POST /v1/events` (one CloudEvent or a batch)."""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel

from intake.handlers import EventIntake, Incoming, split_batch
from intake.settings import IntakeSettings
from slm_shared.events import InvalidEvent
from slm_shared.runtime import Tenant

BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"


class EventResultBody(BaseModel):
    index: int
    id: str | None
    result: Literal["accepted", "duplicate", "rejected"]
    reason: str | None = None


class EventsResponse(BaseModel):
    accepted: int
    duplicate: int
    rejected: int
    results: list[EventResultBody]


def events_router(intake: EventIntake, settings: IntakeSettings) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["events"])

    @router.post("/events", status_code=status.HTTP_202_ACCEPTED, response_model=EventsResponse)
    async def post_events(request: Request, tenant: Tenant) -> EventsResponse:
        """Accept one CloudEvent (structured JSON) or a batch (`application/cloudevents-batch+json`).

        Each event gets `accepted | duplicate | rejected` with the reason; a bad event never fails the
        good ones beside it.
        """
        body = await _read_limited(request, settings.max_body_bytes)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            if content_type == BATCH_CONTENT_TYPE:
                incoming = split_batch(body)
            else:
                document: Any = json.loads(body)
                if isinstance(document, list):
                    raise InvalidEvent(f"body: a JSON array needs Content-Type {BATCH_CONTENT_TYPE}")
                incoming = [Incoming(document, body)]
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"body: not valid JSON ({error})") from error
        except InvalidEvent as error:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(error)) from error
        if len(incoming) > settings.max_batch_events:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"batch of {len(incoming)} events exceeds the limit of {settings.max_batch_events}",
            )
        results = await intake.accept_batch(tenant, incoming, channel="http")
        bodies = [EventResultBody(index=r.index, id=r.id, result=r.outcome, reason=r.reason) for r in results]
        return EventsResponse(
            accepted=sum(r.outcome == "accepted" for r in results),
            duplicate=sum(r.outcome == "duplicate" for r in results),
            rejected=sum(r.outcome == "rejected" for r in results),
            results=bodies,
        )

    return router


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body exceeds {limit} bytes")
    chunks = bytearray()
    async for chunk in request.stream():
        chunks.extend(chunk)
        if len(chunks) > limit:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body exceeds {limit} bytes")
    return bytes(chunks)
