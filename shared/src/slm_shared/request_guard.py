"""The door every HTTP request passes before a route sees it: NUL bytes, the API key, the body's size.

One ASGI middleware for the three services, in this order and before any byte of the body is read:
1. a path or query string with a NUL byte answers 400 (PostgreSQL text cannot hold one, so a ticket id,
   a filter or a report id carrying it would otherwise fail deep inside a query);
2. a body larger than the route's limit by its `Content-Length` answers 413;
3. a request that carries a body (POST, PUT, PATCH) to a non-public path needs a valid API key (401; 429 for
   a client that failed too often): FastAPI reads and parses body parameters before it resolves any
   dependency, so the key is checked here (its scope is the route's to check); a key that cannot be checked
   because the database is away answers 503 with `Retry-After` (this middleware runs outside the app's
   exception handlers, which would answer it so for a route);
4. the body is then counted as it streams in, and the read that crosses the limit answers 413
   (chunked bodies have no `Content-Length`).

A body FastAPI cannot validate answers 422 through `validation_error_response`, which echoes each faulty
input shortened and as valid UTF-8 (FastAPI's own handler fails with a 500 on bytes that are not UTF-8 and
on lone surrogates).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slm_shared.auth import ApiKeyAuthenticator
from slm_shared.background import is_unavailable

log = logging.getLogger(__name__)

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
ECHO_CHARS = 200  # of a faulty input quoted back in a 422
RETRY_AFTER_SECONDS = 5


def unavailable_response() -> JSONResponse:
    """What a request that meets an unreachable database or broker answers: 503 with `Retry-After`, which
    upstream senders retry (a bare 500 they may not)."""
    return JSONResponse(
        {"detail": "service temporarily unavailable (database or broker); retry later"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


@dataclass(frozen=True)
class BodyLimits:
    """Bytes a request body may have: `routes` by exact path, or by prefix when the key ends in `*`."""

    default: int = 64 * 1024
    routes: Mapping[str, int] = field(default_factory=dict)

    def for_path(self, path: str) -> int:
        if path in self.routes:
            return self.routes[path]
        matches = [
            (len(prefix), limit)
            for prefix, limit in self.routes.items()
            if prefix.endswith("*") and path.startswith(prefix[:-1])
        ]
        return max(matches)[1] if matches else self.default


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(status.HTTP_413_CONTENT_TOO_LARGE, f"body exceeds {limit} bytes")


class RequestGuard:
    """ASGI middleware applying the rules of this module; `public_paths` take a body without a key (a path
    ending in `*` is a prefix: the signed webhooks authenticate by their signature instead)."""

    def __init__(
        self, app: ASGIApp, *, limits: BodyLimits, authenticator: ApiKeyAuthenticator, public_paths: frozenset[str]
    ) -> None:
        self.app = app
        self.limits = limits
        self.authenticator = authenticator
        self.public_paths = frozenset(path for path in public_paths if not path.endswith("*"))
        self.public_prefixes = tuple(path[:-1] for path in public_paths if path.endswith("*"))

    def is_public(self, path: str) -> bool:
        return path in self.public_paths or path.startswith(self.public_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = await self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        limit = self.limits.for_path(scope["path"])
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as error:  # raised where no exception handler answered it (e.g. a middleware read)
            if started:
                raise
            await _error(error.status_code, str(error.detail))(scope, receive, send)

    async def _refusal(self, scope: Scope) -> JSONResponse | None:
        path: str = scope["path"]
        query: bytes = scope.get("query_string", b"")
        if "\x00" in path or b"%00" in query or b"\x00" in query:
            return _error(status.HTTP_400_BAD_REQUEST, "the path or query string contains a NUL byte (%00)")
        headers = _headers(scope)
        limit = self.limits.for_path(path)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return _error(status.HTTP_413_CONTENT_TOO_LARGE, f"body exceeds {limit} bytes")
        if scope["method"] in BODY_METHODS and not self.is_public(path):
            client = scope.get("client")
            try:
                await self.authenticator.tenant_for(headers.get("authorization"), client=client[0] if client else None)
            except HTTPException as error:
                return _error(error.status_code, str(error.detail), error.headers)
            except Exception as error:
                if not is_unavailable(error):
                    raise
                log.warning(
                    "%s %s: the API key cannot be checked, the database is unavailable: %r",
                    scope["method"],
                    path,
                    error,
                )
                return unavailable_response()
        return None


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", ())}


def _error(code: int, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    return JSONResponse(body, status_code=code, headers=dict(headers or {}))


def install(
    app: FastAPI, *, limits: BodyLimits, authenticator: ApiKeyAuthenticator, public_paths: frozenset[str]
) -> None:
    """The guard around `app`, and the 422 handler that never fails on what it quotes back."""
    app.add_middleware(RequestGuard, limits=limits, authenticator=authenticator, public_paths=public_paths)
    app.add_exception_handler(RequestValidationError, validation_error_response)  # type: ignore[arg-type]


async def validation_error_response(_: Request, error: RequestValidationError) -> JSONResponse:
    detail = [
        {
            "loc": [_printable(part) for part in item.get("loc", ())],
            "msg": _printable(item.get("msg", "")),
            "type": _printable(item.get("type", "")),
            **({"input": _printable(item["input"])} if "input" in item else {}),
        }
        for item in error.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def _printable(value: Any) -> Any:
    """Numbers as they are; anything else as short, valid UTF-8 text."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
    elif isinstance(value, str):
        text = value.encode("utf-8", "replace").decode("utf-8")
    else:
        text = repr(value).encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= ECHO_CHARS else f"{text[: ECHO_CHARS - 1]}…"
