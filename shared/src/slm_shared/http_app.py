"""The HTTP app every service serves: the FastAPI factory, its tracing middleware, the outage answer and the
operations routes (`/healthz`, `/readyz`, `/metrics`, `/asyncapi.json`)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg
import sqlalchemy as sa
import sqlalchemy.exc
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry.trace import SpanKind
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from slm_shared import request_guard
from slm_shared.background import is_unavailable
from slm_shared.request_guard import BodyLimits, unavailable_response
from slm_shared.set_aside import set_aside_router
from slm_shared.tracing import context_from_headers, tracer

if TYPE_CHECKING:
    from slm_shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

OPERATIONS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# What a request may raise when its database (or broker) is away; `answer_outage` sorts them out.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    sa.exc.DBAPIError,
    sa.exc.TimeoutError,
    OSError,
    asyncpg.exceptions.PostgresError,
    asyncpg.exceptions.InterfaceError,
)


def build_http_app(
    runtime: ServiceRuntime,
    *,
    title: str,
    routers: Iterable[APIRouter],
    body_limits: BodyLimits | None = None,
    public_paths: Iterable[str] = (),
) -> FastAPI:
    """`body_limits` per route (default: `max_request_body_bytes`); `public_paths` take a body without a key.

    The app's lifespan starts `runtime` and stops it."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=title, version="1.0.0", lifespan=lifespan)
    app.state.authenticator = runtime.authenticator
    app.state.runtime = runtime
    request_guard.install(
        app,
        limits=body_limits or BodyLimits(runtime.settings.max_request_body_bytes),
        authenticator=runtime.authenticator,
        public_paths=OPERATIONS_PATHS | set(public_paths),
    )
    app.middleware("http")(trace_requests)
    for unavailable in OUTAGE_ERRORS:
        app.add_exception_handler(unavailable, answer_outage)
    app.include_router(operations_router(runtime, title))
    app.include_router(set_aside_router(runtime.set_aside_table, runtime.sessions))
    for router in routers:
        app.include_router(router)
    return app


async def trace_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """A server span per API request, child of the caller's `traceparent` if it sent one."""
    if request.url.path in OPERATIONS_PATHS:
        return await call_next(request)
    with tracer().start_as_current_span(
        f"{request.method} {request.url.path}",
        context=context_from_headers(dict(request.headers)),
        kind=SpanKind.SERVER,
        attributes={"http.request.method": request.method, "url.path": request.url.path},
    ) as span:
        response = await call_next(request)
        span.set_attribute("http.response.status_code", response.status_code)
        return response


def operations_router(runtime: ServiceRuntime, title: str) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> JSONResponse:
        alive = runtime.alive()
        return JSONResponse(
            {"status": "ok" if alive else "a background task is dead"}, status_code=200 if alive else 503
        )

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = await runtime.ready()
        return JSONResponse(
            {"ready": all(checks.values()), "checks": checks}, status_code=200 if all(checks.values()) else 503
        )

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @router.get("/asyncapi.json")
    async def asyncapi() -> dict[str, Any]:
        return runtime.asyncapi(title)

    return router


async def answer_outage(request: Request, error: Exception) -> Response:
    """503 with `Retry-After` while a dependency is down (upstream senders retry those); any other error of
    these kinds is a bug of ours and stays a 500."""
    if is_unavailable(error):
        log.warning("%s %s: dependency unavailable: %r", request.method, request.url.path, error)
        return unavailable_response()
    log.error("%s %s failed", request.method, request.url.path, exc_info=error)
    return JSONResponse({"detail": "internal server error"}, status_code=500)
