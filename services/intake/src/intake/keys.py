"""Tenants' API keys: create, rotate, revoke. Stored hashed; every change announced on `itsm.tenants.v1`,
signed with intake's key signing key (`slm_shared.signing`) so the other services can tell it came from here.

A tenant exists while it has an active key; the Kafka ingest path accepts events only for such tenants.
A key's scopes are chosen when it is created and kept by a rotation.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from intake import tables
from slm_shared import topics
from slm_shared.auth import IssuedKey, issue_key, parse_scopes, scopes_text
from slm_shared.events import API_KEY_EVENT, API_SCOPES, ApiKeyData, ApiScope, make_event
from slm_shared.outbox import Outbox, OutgoingEvent

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from slm_shared.signing import AnnouncementSigner

# Tenant ids appear in Kafka keys (`<tenant>/<ticket>`): no slash, no spaces.
TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class UnknownKey(LookupError):
    """No API key with that id."""


class KeyAdmin:
    """`signer`: without one the announcements go out unsigned, and the other services ignore them."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], signer: AnnouncementSigner | None = None) -> None:
        self._sessions = sessions
        self._outbox = Outbox(tables.outbox)
        self._signer = signer

    async def create(self, tenant_id: str, scopes: tuple[ApiScope, ...] = API_SCOPES) -> IssuedKey:
        if not TENANT_ID.fullmatch(tenant_id):
            raise ValueError(f"tenant id {tenant_id!r}: 1-128 letters, digits, '.', '_' or '-'")
        issued = issue_key(tenant_id, parse_scopes(" ".join(scopes)))
        async with self._sessions() as session, session.begin():
            await self._store(
                session,
                ApiKeyData(
                    key_id=issued.key_id,
                    tenant_id=tenant_id,
                    key_hash=issued.key_hash,
                    status="active",
                    scopes=issued.scopes,
                ),
            )
        return issued

    async def rotate(self, key_id: str) -> IssuedKey:
        """A new key for the same tenant and scopes and the old one revoked, in one transaction."""
        async with self._sessions() as session, session.begin():
            old = await self._find(session, key_id)
            issued = issue_key(old.tenant_id, old.scopes)
            await self._store(
                session,
                ApiKeyData(
                    key_id=issued.key_id,
                    tenant_id=old.tenant_id,
                    key_hash=issued.key_hash,
                    status="active",
                    scopes=old.scopes,
                ),
            )
            await self._store(session, old.model_copy(update={"status": "revoked"}))
        return issued

    async def reannounce(self) -> int:
        """Announce every key again, signed with the current key (after the signing key was rotated); the
        other services' upsert makes this harmless, and a revocation stays final."""
        async with self._sessions() as session, session.begin():
            keys = [self._data(row) for row in await session.execute(sa.select(tables.api_keys))]
            for key in keys:
                await self._announce(session, key, datetime.now(UTC), again=True)
        return len(keys)

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
        return [self._data(r) for r in rows]

    @staticmethod
    def _data(row: sa.Row[Any]) -> ApiKeyData:
        return ApiKeyData(
            key_id=row.key_id,
            tenant_id=row.tenant_id,
            key_hash=row.key_hash,
            status=row.status,
            scopes=parse_scopes(row.scopes),
        )

    async def _find(self, session: AsyncSession, key_id: str) -> ApiKeyData:
        row = (await session.execute(sa.select(tables.api_keys).where(tables.api_keys.c.key_id == key_id))).first()
        if row is None:
            raise UnknownKey(f"no API key with id {key_id}")
        return self._data(row)

    async def _store(self, session: AsyncSession, key: ApiKeyData) -> None:
        """Store the key and announce it to the other services, in the caller's transaction."""
        now = datetime.now(UTC)
        await session.execute(
            insert(tables.api_keys)
            .values(
                key_id=key.key_id,
                tenant_id=key.tenant_id,
                key_hash=key.key_hash,
                status=key.status,
                updated_at=now,
                scopes=scopes_text(key.scopes),
            )
            .on_conflict_do_update(index_elements=["key_id"], set_={"status": key.status, "updated_at": now})
        )
        await self._announce(session, key, now)

    async def _announce(self, session: AsyncSession, key: ApiKeyData, now: datetime, again: bool = False) -> None:
        signed = self._signer.sign(key) if self._signer is not None else key
        # A re-announcement needs an id of its own, or the other services' inboxes would drop it as a duplicate.
        suffix = f"-{now.strftime('%Y%m%dT%H%M%S%f')}" if again else ""
        event = make_event(
            event_id=f"{key.key_id}-{key.status}{suffix}",
            source="slm://intake/keys",
            event_type=API_KEY_EVENT,
            time=now,
            tenant_id=key.tenant_id,
            subject=key.key_id,
            data=signed,
        )
        await self._outbox.add(
            session, [OutgoingEvent(topic=topics.TENANTS, key=f"{key.tenant_id}/{key.key_id}", event=event)]
        )
