"""Dashboard sessions: a browser signs in once with an API key and from then on holds only a random session id.

Rules:
- the id is 256 random bits; only its SHA-256 is stored, so a copy of the table opens no session;
- a session ends `lifetime` after sign-in, after `idle` without a request, on logout (its row is deleted),
  and as soon as the API key that opened it is revoked (every lookup joins the key's current status, and
  the key's tenant must still be the session's);
- `last_seen_at` is written at most once per `touch_every`, not on every dashboard refresh.

`SessionPolicy` is pure (time passed in) and decides; `SqlDashboardSessions` runs in the caller's transaction
(the unit of work's `signins`) and never commits.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from reporting import tables

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

SESSION_ID_BYTES = 32


@dataclass(frozen=True)
class SessionPolicy:
    lifetime: timedelta
    idle: timedelta
    touch_every: timedelta = timedelta(seconds=60)

    def expires_at(self, signed_in_at: datetime) -> datetime:
        return signed_in_at + self.lifetime

    def alive(self, expires_at: datetime, last_seen_at: datetime, now: datetime) -> bool:
        return now < expires_at and now < last_seen_at + self.idle

    def touch_due(self, last_seen_at: datetime, now: datetime) -> bool:
        return now - last_seen_at >= self.touch_every


@dataclass(frozen=True)
class DashboardSession:
    tenant_id: str
    key_id: str


def new_session_id() -> str:
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode(errors="replace")).hexdigest()


class SqlDashboardSessions:
    """Sessions in `dashboard_sessions`, checked against the service's copy of the API keys."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def open(self, key_id: str, tenant_id: str, now: datetime, policy: SessionPolicy) -> str:
        """A new session for a key that was just checked; returns the id the browser keeps (never stored)."""
        session_id = new_session_id()
        await self._session.execute(
            sa.insert(tables.dashboard_sessions).values(
                session_hash=session_hash(session_id),
                key_id=key_id,
                tenant_id=tenant_id,
                created_at=now,
                last_seen_at=now,
                expires_at=policy.expires_at(now),
            )
        )
        return session_id

    async def resolve(self, session_id: str, now: datetime, policy: SessionPolicy) -> DashboardSession | None:
        """The live session of this id, or None (unknown, expired, idle too long, or its key revoked)."""
        t, k = tables.dashboard_sessions, tables.api_keys
        hashed = session_hash(session_id)
        row = (
            await self._session.execute(
                sa.select(
                    t.c.key_id,
                    t.c.tenant_id,
                    t.c.last_seen_at,
                    t.c.expires_at,
                    k.c.status,
                    k.c.tenant_id.label("key_tenant"),
                )
                .select_from(t.outerjoin(k, k.c.key_id == t.c.key_id))
                .where(t.c.session_hash == hashed)
            )
        ).first()
        if row is None:
            return None
        if (
            row.status != "active"
            or row.key_tenant != row.tenant_id
            or not policy.alive(row.expires_at, row.last_seen_at, now)
        ):
            await self._session.execute(sa.delete(t).where(t.c.session_hash == hashed))
            return None
        if policy.touch_due(row.last_seen_at, now):
            await self._session.execute(sa.update(t).where(t.c.session_hash == hashed).values(last_seen_at=now))
        return DashboardSession(tenant_id=row.tenant_id, key_id=row.key_id)

    async def close(self, session_id: str) -> None:
        t = tables.dashboard_sessions
        await self._session.execute(sa.delete(t).where(t.c.session_hash == session_hash(session_id)))

    async def purge(self, now: datetime, policy: SessionPolicy) -> int:
        """Delete the sessions that can no longer be used (they are refused anyway; this keeps the table small)."""
        t, k = tables.dashboard_sessions, tables.api_keys
        active_key = sa.exists().where(k.c.key_id == t.c.key_id, k.c.status == "active", k.c.tenant_id == t.c.tenant_id)
        result = await self._session.execute(
            sa.delete(t).where(sa.or_(t.c.expires_at <= now, t.c.last_seen_at <= now - policy.idle, ~active_key))
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
