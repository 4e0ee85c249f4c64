"""What reporting does for browsers: security headers on every answer, and the Origin check of forms.

- Every response carries `nosniff`, `X-Frame-Options: DENY`, `Referrer-Policy: same-origin`, a
  Cross-Origin-Opener-Policy and a Content-Security-Policy with `frame-ancestors 'none'` (no page of ours can be
  framed: no clickjacking of the sign-out button or of a report). The default policy allows no script at all
  and inline styles and `data:` images only, which is what the HTML report needs; the dashboard's pages send
  their own stricter policy with a per-response nonce (`dashboard_policy`).
- Over HTTPS (as uvicorn sees it: behind a TLS-terminating proxy only when the proxy is trusted,
  `forwarded_allow_ips`) they also carry `Strict-Transport-Security`.
- A state-changing form (the dashboard's sign-in and sign-out) is accepted only when the browser says it comes
  from this site: `Origin` (sent by every current browser on a POST), else `Referer`, must be the origin the
  request was addressed to or one configured as trusted. SameSite=Strict cookies already stop a forged sign-out
  from carrying the session; this also stops a forged sign-in (login CSRF: signing the victim into the
  attacker's tenant).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders

if TYPE_CHECKING:
    from collections.abc import Iterable

    from starlette.requests import Request
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)
BASELINE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: under no-referrer browsers send `Origin: null` on our own form posts.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
HSTS = "max-age=31536000; includeSubDomains"


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def dashboard_policy(nonce: str) -> str:
    """The dashboard's CSP: its one inline script and style by nonce, fetches to itself, forms to itself.
    `style-src-attr` allows the status badges' colour attributes (no script can run from a style attribute)."""
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "style-src-attr 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def trusted_origins(urls: Iterable[str]) -> frozenset[str]:
    return frozenset(origin for origin in (origin_of(url) for url in urls if url) if origin)


def form_origin_allowed(
    origin: str | None, referer: str | None, own_origin: str, trusted: frozenset[str] = frozenset()
) -> bool:
    """True when a form submission comes from this site. No Origin and no Referer is refused: every browser
    sends one of them on a form POST, and a non-browser client has no business with the sign-in form."""
    source = origin.lower() if origin and origin != "null" else None
    if source is None and referer:
        source = origin_of(referer)
    return source is not None and (source == own_origin.lower() or source in trusted)


def own_origin(request: Request) -> str:
    """The origin this request was addressed to: the scheme uvicorn settled on (forwarded by a trusted proxy
    or not) and the Host header the browser sent."""
    host = request.headers.get("host") or request.url.netloc
    return f"{request.url.scheme}://{host}"


class SecurityHeaders:
    """ASGI middleware adding the baseline headers to every response (a route's own CSP wins)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in BASELINE_HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", DEFAULT_POLICY)
                if https:
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, with_headers)
