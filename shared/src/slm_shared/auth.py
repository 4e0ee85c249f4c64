"""API keys: stored hashed, validated the same way by every service, scoped to one tenant.

A key reads `slm_<key_id>_<secret>`. Only SHA-256 of the whole key is stored: keys carry 256 bits of
randomness, so a fast hash is safe (as for GitHub tokens) and lookups stay cheap. Intake issues keys and
announces them on `itsm.tenants.v1`; the other services store the announced hashes in their own database.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from fastapi import HTTPException, Request, status
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from slm_shared.events import ApiKeyData

KEY_PREFIX = "slm"
CACHE_SECONDS = 5.0  # a revoked key stops working within this long on every replica


def define_api_key_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "api_keys",
        metadata,
        sa.Column("key_id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False, index=True),
        sa.Column("key_hash", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    tenant_id: str
    plaintext: str
    key_hash: str


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def issue_key(tenant_id: str) -> IssuedKey:
    key_id = secrets.token_hex(6)
    plaintext = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    return IssuedKey(key_id=key_id, tenant_id=tenant_id, plaintext=plaintext, key_hash=hash_key(plaintext))


def key_id_of(plaintext: str) -> str | None:
    parts = plaintext.split("_", 2)
    # Key ids are hex (`issue_key`); anything else never reaches the database (a NUL would fail the query).
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or len(parts[1]) > 64 or not (
            parts[1].isascii() and parts[1].isalnum()):
        return None
    return parts[1]


async def store_key(session: AsyncSession, table: sa.Table, key: ApiKeyData, at: datetime) -> None:
    """Upsert a key announcement; a revocation is final even if an older `active` arrives later."""
    statement = insert(table).values(
        key_id=key.key_id, tenant_id=key.tenant_id, key_hash=key.key_hash, status=key.status, updated_at=at
    )
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.key_id],
        set_={"status": statement.excluded.status, "updated_at": statement.excluded.updated_at},
        where=sa.and_(table.c.status != "revoked", table.c.updated_at <= statement.excluded.updated_at),
    )
    await session.execute(statement)


class ApiKeyAuthenticator:
    """Resolves `Authorization: Bearer <key>` to the key's tenant, or answers 401."""

    def __init__(self, table: sa.Table, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._table = table
        self._sessions = sessions
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def tenant_for(self, authorization: str | None) -> str:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise _unauthorized("missing bearer API key")
        plaintext = authorization[7:].strip()
        key_id = key_id_of(plaintext)
        if key_id is None:
            raise _unauthorized("malformed API key")
        tenant = await self._lookup(key_id, hash_key(plaintext))
        if tenant is None:
            raise _unauthorized("unknown or revoked API key")
        return tenant

    async def _lookup(self, key_id: str, key_hash: str) -> str | None:
        cached = self._cache.get(key_hash)
        now = time.monotonic()
        if cached and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        async with self._sessions() as session:
            row = (
                await session.execute(
                    sa.select(self._table.c.tenant_id, self._table.c.key_hash, self._table.c.status).where(
                        self._table.c.key_id == key_id
                    )
                )
            ).first()
        tenant = None
        if row is not None and row.status == "active" and hmac.compare_digest(row.key_hash, key_hash):
            tenant = str(row.tenant_id)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key_hash] = (now, tenant)
        return tenant


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=reason, headers={"WWW-Authenticate": "Bearer"})


async def current_tenant(request: Request) -> str:
    """FastAPI dependency: the tenant of the request's API key (the app stores the authenticator)."""
    authenticator: ApiKeyAuthenticator = request.app.state.authenticator
    return await authenticator.tenant_for(request.headers.get("authorization"))

