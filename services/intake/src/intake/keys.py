"""Tenants' API keys: create, rotate, revoke. Stored hashed; every change announced on `itsm.tenants.v1`.

A tenant exists while it has an active key; the Kafka ingest path accepts events only for such tenants.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from intake import tables
from slm_shared import topics
from slm_shared.auth import IssuedKey, issue_key
from slm_shared.events import API_KEY_EVENT, ApiKeyData, make_event
from slm_shared.outbox import Outbox, OutgoingEvent

# Tenant ids appear in Kafka keys (`<tenant>/<ticket>`): no slash, no spaces.
TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class UnknownKey(LookupError):
    """No API key with that id."""


class KeyAdmin:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._outbox = Outbox(tables.outbox)

    async def create(self, tenant_id: str) -> IssuedKey:
        if not TENANT_ID.fullmatch(tenant_id):
            raise ValueError(f"tenant id {tenant_id!r}: 1-128 letters, digits, '.', '_' or '-'")
        issued = issue_key(tenant_id)
        async with self._sessions() as session, session.begin():
            await self._store(session, ApiKeyData(key_id=issued.key_id, tenant_id=tenant_id,
                                                  key_hash=issued.key_hash, status="active"))
        return issued

    async def rotate(self, key_id: str) -> IssuedKey:
        """A new key for the same tenant and the old one revoked, in one transaction."""
        async with self._sessions() as session, session.begin():
            old = await self._find(session, key_id)
            issued = issue_key(old.tenant_id)
            await self._store(session, ApiKeyData(key_id=issued.key_id, tenant_id=old.tenant_id,
                                                  key_hash=issued.key_hash, status="active"))
            await self._store(session, old.model_copy(update={"status": "revoked"}))
        return issued

    async def revoke(self, key_id: str) -> ApiKeyData:
        async with self._sessions() as session, session.begin():
            revoked = (await self._find(session, key_id)).model_copy(update={"status": "revoked"})
            await self._store(session, revoked)
        return revoked

    async def list(self, tenant_id: str | None = None) -> Sequence[ApiKeyData]:
        statement = sa.select(tables.api_keys).order_by(tables.api_keys.c.tenant_id, tables.api_keys.c.key_id)
        if tenant_id is not None:
            statement = statement.where(tables.api_keys.c.tenant_id == tenant_id)
        async with self._sessions() as session:
            rows = await session.execute(statement)
        return [ApiKeyData(key_id=r.key_id, tenant_id=r.tenant_id, key_hash=r.key_hash, status=r.status) for r in rows]

    async def _find(self, session: AsyncSession, key_id: str) -> ApiKeyData:
        row = (await session.execute(sa.select(tables.api_keys).where(tables.api_keys.c.key_id == key_id))).first()
        if row is None:
            raise UnknownKey(f"no API key with id {key_id}")
        return ApiKeyData(key_id=row.key_id, tenant_id=row.tenant_id, key_hash=row.key_hash, status=row.status)

    async def _store(self, session: AsyncSession, key: ApiKeyData) -> None:
        """Store the key and announce it to the other services, in the caller's transaction."""
        now = datetime.now(UTC)
        await session.execute(
            insert(tables.api_keys)
            .values(key_id=key.key_id, tenant_id=key.tenant_id, key_hash=key.key_hash, status=key.status,
                    updated_at=now)
            .on_conflict_do_update(index_elements=["key_id"], set_={"status": key.status, "updated_at": now})
        )
        event = make_event(event_id=f"{key.key_id}-{key.status}", source="slm://intake/keys",
                           event_type=API_KEY_EVENT, time=now, tenant_id=key.tenant_id, subject=key.key_id, data=key)
        await self._outbox.add(
            session, [OutgoingEvent(topic=topics.TENANTS, key=f"{key.tenant_id}/{key.key_id}", event=event)]
        )
