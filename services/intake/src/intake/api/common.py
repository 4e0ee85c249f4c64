"""What intake's routes share: the authenticated, rate-limited caller, bounded bodies, response bodies."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from intake.domain import EventResult
from slm_shared.auth import ApiKeyAuthenticator, client_address
from slm_shared.events import ApiScope
from slm_shared.ratelimit import RateLimiter

BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
EVENT_CONTENT_TYPES = ("application/cloudevents+json", "application/json")
JSON_CONTENT_TYPES = ("application/json", "text/json")

# Documents the scheme in OpenAPI; the check itself is intake's, so a missing key is a 401, not a 403.
bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <api key>`; the key's tenant scopes the call")


@dataclass(frozen=True)
class Caller:
    tenant_id: str
    key_id: str


def caller_with(scope: ApiScope) -> Callable[..., Awaitable[Caller]]:
    """The dependency: 401 without a valid key, 403 naming `scope` if the key lacks it, 429 with Retry-After
    once the key's bucket (or its client's failed-authentication bucket) is empty. The per-key rate limiter
    is the app's (`app.state.rate_limiter`, set by `create_app`), shared by every scope."""

    async def caller(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> Caller:
        authenticator: ApiKeyAuthenticator = request.app.state.authenticator
        limiter: RateLimiter = request.app.state.rate_limiter
        principal = await authenticator.principal_for(
            request.headers.get("authorization"), client=client_address(request), scope=scope
        )
        key_id = principal.key_id
        tenant_id = principal.tenant_id
        wait = limiter.take(key_id, time.monotonic())
        if wait > 0:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"rate limit of {limiter.rate:g} requests/s (burst {limiter.burst:g}) for this API key exceeded",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        return Caller(tenant_id, key_id)

    caller.required_scope = scope  # type: ignore[attr-defined]  # read by the route-scope test
    return caller


# The kit's `ReadTenant`-style aliases, with the key id beside the tenant (the rate limit is per key).
IngestCaller = Annotated[Caller, Depends(caller_with("ingest"))]
ReadCaller = Annotated[Caller, Depends(caller_with("read"))]
ConfigCaller = Annotated[Caller, Depends(caller_with("config"))]
AdminCaller = Annotated[Caller, Depends(caller_with("admin"))]


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def require_media_type(request: Request, allowed: tuple[str, ...]) -> str:
    found = media_type(request)
    if found and found not in allowed:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type {found!r} is not accepted here (one of {', '.join(allowed)})",
        )
    return found


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body exceeds {limit} bytes")
    chunks = bytearray()
    async for chunk in request.stream():
        chunks.extend(chunk)
        if len(chunks) > limit:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body exceeds {limit} bytes")
    return bytes(chunks)


class EventResultBody(BaseModel):
    index: int
    id: str | None
    result: Literal["accepted", "duplicate", "rejected"]
    code: str | None = None
    reason: str | None = None


class EventsResponse(BaseModel):
    accepted: int
    duplicate: int
    rejected: int
    results: list[EventResultBody]

    @classmethod
    def of(cls, results: list[EventResult]) -> EventsResponse:
        return cls(
            accepted=sum(r.outcome == "accepted" for r in results),
            duplicate=sum(r.outcome == "duplicate" for r in results),
            rejected=sum(r.outcome == "rejected" for r in results),
            results=[
                EventResultBody(index=r.index, id=r.id, result=r.outcome, code=r.code, reason=r.reason) for r in results
            ],
        )


class ErrorBody(BaseModel):
    detail: str


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "the body is not JSON, or the single event or webhook is rejected (see `results`)",
        401: "missing, malformed, unknown or revoked API key (signed webhooks: missing, bad or stale signature)",
        403: "the API key lacks the route's scope, or the event names another tenant than the API key's",
        409: "a signed webhook delivery that was already taken (replay)",
        413: "the body or the batch is larger than allowed",
        415: "unsupported Content-Type",
        429: "rate limit exceeded; retry after `Retry-After` seconds",
    }
    return {code: {"description": descriptions[code]} for code in codes}
