"""Tenants' API keys in SQL: stored hashed, with their tenant, status and scopes (`SqlApiKeys`, the unit of
work's `api_keys`; creating, rotating and revoking them: intake.handlers.keys). Never commits.

A tenant exists while it has an active key; the Kafka ingest path accepts events only for such tenants.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from intake import tables
from slm_shared.auth import parse_scopes, store_key
from slm_shared.events import ApiKeyData

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession

# Tenant ids appear in Kafka keys (`<tenant>/<ticket>`): no slash, no spaces.
TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class UnknownKey(LookupError):
    """No API key with that id."""


def _data(row: sa.Row[Any]) -> ApiKeyData:
    return ApiKeyData(
        key_id=row.key_id,
        tenant_id=row.tenant_id,
        key_hash=row.key_hash,
        status=row.status,
        scopes=parse_scopes(row.scopes),
    )


class SqlApiKeys:
    """The `api_keys` rows, in the unit of work's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def find(self, key_id: str) -> ApiKeyData:
        """The key; UnknownKey when there is none with that id."""
        row = (
            await self._session.execute(sa.select(tables.api_keys).where(tables.api_keys.c.key_id == key_id))
        ).first()
        if row is None:
            raise UnknownKey(f"no API key with id {key_id}")
        return _data(row)

    async def store(self, key: ApiKeyData, now: datetime) -> None:
        """A new key, or a known key's new status (its hash, tenant and scopes never change): the kit's upsert,
        the one every service keeps its copy with, so a revocation is final here too."""
        await store_key(self._session, tables.api_keys, key, now)

    async def every(self) -> list[ApiKeyData]:
        """Every key, whatever its status, in the table's order."""
        return [_data(row) for row in await self._session.execute(sa.select(tables.api_keys))]

    async def listed(self, tenant_id: str | None = None) -> list[ApiKeyData]:
        """The keys (of one tenant when given), by tenant and key id."""
        statement = sa.select(tables.api_keys).order_by(tables.api_keys.c.tenant_id, tables.api_keys.c.key_id)
        if tenant_id is not None:
            statement = statement.where(tables.api_keys.c.tenant_id == tenant_id)
        return [_data(row) for row in await self._session.execute(statement)]
