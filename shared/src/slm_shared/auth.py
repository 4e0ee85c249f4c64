"""API keys: stored hashed, validated the same way by every service, scoped to one tenant.

A key reads `slm_<key_id>_<secret>`. Only SHA-256 of the whole key is stored: keys carry 256 bits of
randomness, so a fast hash is safe (as for GitHub tokens) and lookups stay cheap. Intake issues keys and
announces them on `itsm.tenants.v1` (signed, `slm_shared.signing`); the other services store the announced
hashes in their own database.

Each key carries scopes (`ingest`, `read`, `config`, `admin`); each route names the scope it needs and a key
without it gets 403 naming the missing scope. Failed authentications are counted per client address: a client
that fails too often is answered 429 for a while, whatever key it sends, so keys cannot be guessed at speed.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, HTTPException, Request, status
from prometheus_client import Counter
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from slm_shared.events import API_SCOPES, ApiKeyData, ApiScope
from slm_shared.ratelimit import RateLimiter

KEY_PREFIX = "slm"
CACHE_SECONDS = 5.0  # a revoked key stops working within this long on every replica
ALL_SCOPES_TEXT = " ".join(API_SCOPES)  # the column's default: keys from before scopes keep every right

AUTH_FAILURES = Counter("slm_auth_failures_total", "Failed authentications (API keys, webhook signatures)", ["reason"])
AUTH_THROTTLED = Counter("slm_auth_throttled_total", "Requests refused because their client failed too often")


def define_api_key_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "api_keys",
        metadata,
        sa.Column("key_id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False, index=True),
        sa.Column("key_hash", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False, server_default=ALL_SCOPES_TEXT),
    )


def scopes_text(scopes: Iterable[ApiScope]) -> str:
    """Scopes as stored: space-separated in the canonical order (as OAuth writes them)."""
    chosen = set(scopes)
    return " ".join(scope for scope in API_SCOPES if scope in chosen)


def parse_scopes(text: str) -> tuple[ApiScope, ...]:
    """`ingest,read` or `ingest read` -> the scopes in canonical order; an unknown name is a ValueError."""
    names = {name for name in text.replace(",", " ").split() if name}
    unknown = names - set(API_SCOPES)
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(sorted(unknown))}: choose from {', '.join(API_SCOPES)}")
    if not names:
        raise ValueError(f"at least one scope: {', '.join(API_SCOPES)}")
    return tuple(scope for scope in API_SCOPES if scope in names)


@dataclass(frozen=True)
class Principal:
    """Who a valid key speaks for and what it may do."""

    tenant_id: str
    key_id: str
    scopes: tuple[ApiScope, ...]


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    tenant_id: str
    plaintext: str
    key_hash: str
    scopes: tuple[ApiScope, ...] = API_SCOPES


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def issue_key(tenant_id: str, scopes: tuple[ApiScope, ...] = API_SCOPES) -> IssuedKey:
    key_id = secrets.token_hex(6)
    plaintext = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    return IssuedKey(
        key_id=key_id, tenant_id=tenant_id, plaintext=plaintext, key_hash=hash_key(plaintext), scopes=scopes
    )


def key_id_of(plaintext: str) -> str | None:
    parts = plaintext.split("_", 2)
    # Key ids are hex (`issue_key`); anything else never reaches the database (a NUL would fail the query).
    if (
        len(parts) != 3
        or parts[0] != KEY_PREFIX
        or not parts[1]
        or len(parts[1]) > 64
        or not (parts[1].isascii() and parts[1].isalnum())
    ):
        return None
    return parts[1]


async def store_key(session: AsyncSession, table: sa.Table, key: ApiKeyData, at: datetime) -> None:
    """Upsert a key announcement; a revocation is final even if an older `active` arrives later. Scopes are
    fixed when a key is issued, so only the status follows later announcements."""
    statement = insert(table).values(
        key_id=key.key_id,
        tenant_id=key.tenant_id,
        key_hash=key.key_hash,
        status=key.status,
        updated_at=at,
        scopes=scopes_text(key.scopes),
    )
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.key_id],
        set_={"status": statement.excluded.status, "updated_at": statement.excluded.updated_at},
        where=sa.and_(table.c.status != "revoked", table.c.updated_at <= statement.excluded.updated_at),
    )
    await session.execute(statement)


class FailedAuthentications:
    """Per client address, a bucket of failures: `burst` at once, refilled at `per_minute`; an empty bucket
    means 429 until a failure is forgiven. Pure apart from the monotonic clock reading it is given."""

    def __init__(self, burst: int, per_minute: float) -> None:
        self._buckets = RateLimiter(per_minute / 60.0, burst)

    def wait(self, client: str, now: float) -> float:
        return self._buckets.wait(client, now)

    def failed(self, client: str, now: float) -> None:
        self._buckets.take(client, now)


class ApiKeyAuthenticator:
    """Resolves `Authorization: Bearer <key>` to the key's principal, or answers 401, 403 or 429."""

    def __init__(
        self, table: sa.Table, sessions: async_sessionmaker[AsyncSession], failures: FailedAuthentications | None = None
    ) -> None:
        self._table = table
        self._sessions = sessions
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self.failures = failures or FailedAuthentications(burst=20, per_minute=10)

    async def tenant_for(
        self, authorization: str | None, *, client: str | None = None, scope: ApiScope | None = None
    ) -> str:
        return (await self.principal_for(authorization, client=client, scope=scope)).tenant_id

    async def principal_for(
        self, authorization: str | None, *, client: str | None = None, scope: ApiScope | None = None
    ) -> Principal:
        """The key's principal; 429 first if `client` failed too often, 403 if the key lacks `scope`."""
        self.refuse_if_throttled(client)
        try:
            principal = await self._principal(authorization)
        except HTTPException as error:
            if authorization:  # no key at all guesses nothing: only a key that fails counts
                self.record_failure(client, "api_key")
            raise error
        if scope is not None and scope not in principal.scopes:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this API key lacks the `{scope}` scope (it has: {', '.join(principal.scopes)})",
            )
        return principal

    def refuse_if_throttled(self, client: str | None) -> None:
        if client is None:
            return
        wait = self.failures.wait(client, time.monotonic())
        if wait > 0:
            AUTH_THROTTLED.inc()
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                "too many failed authentications from this client; retry later",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )

    def record_failure(self, client: str | None, reason: str) -> None:
        AUTH_FAILURES.labels(reason).inc()
        if client is not None:
            self.failures.failed(client, time.monotonic())

    async def _principal(self, authorization: str | None) -> Principal:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise _unauthorized("missing bearer API key")
        plaintext = authorization[7:].strip()
        key_id = key_id_of(plaintext)
        if key_id is None:
            raise _unauthorized("malformed API key")
        principal = await self._lookup(key_id, hash_key(plaintext))
        if principal is None:
            raise _unauthorized("unknown or revoked API key")
        return principal

    async def _lookup(self, key_id: str, key_hash: str) -> Principal | None:
        cached = self._cache.get(key_hash)
        now = time.monotonic()
        if cached and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        async with self._sessions() as session:
            row = (
                await session.execute(
                    sa.select(
                        self._table.c.tenant_id, self._table.c.key_hash, self._table.c.status, self._table.c.scopes
                    ).where(self._table.c.key_id == key_id)
                )
            ).first()
        principal = None
        if row is not None and row.status == "active" and hmac.compare_digest(row.key_hash, key_hash):
            principal = Principal(str(row.tenant_id), key_id, parse_scopes(str(row.scopes)))
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key_hash] = (now, principal)
        return principal


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=reason, headers={"WWW-Authenticate": "Bearer"})


def client_address(request: Request) -> str | None:
    """The address failures are counted under: the peer as uvicorn sees it (behind an ingress, the forwarded
    client once uvicorn trusts the proxy's headers; docs/security.md)."""
    return request.client.host if request.client else None


def tenant_with(scope: ApiScope) -> Callable[[Request], Awaitable[str]]:
    """FastAPI dependency: the tenant of the request's API key, which must carry `scope` (else 403)."""

    async def scoped_tenant(request: Request) -> str:
        authenticator: ApiKeyAuthenticator = request.app.state.authenticator
        return await authenticator.tenant_for(
            request.headers.get("authorization"), client=client_address(request), scope=scope
        )

    scoped_tenant.required_scope = scope  # type: ignore[attr-defined]  # read by the route-scope test
    return scoped_tenant


# Each route names the scope it needs (intake has its own, rate-limited, in intake.api.common).
ReadTenant = Annotated[str, Depends(tenant_with("read"))]
ConfigTenant = Annotated[str, Depends(tenant_with("config"))]
AdminTenant = Annotated[str, Depends(tenant_with("admin"))]
