"""Configuration versions (the bundles applied, by tenant) and the version each ticket is pinned to, on PostgreSQL.

Repositories never commit: they work inside the caller's unit of work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from sla_engine import tables
from sla_engine.ports import BundleSource, ConfigVersion, VersionKey

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession


class SqlBundleRepository:
    """The `config_versions` and `ticket_versions` tables, inside the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def bundle_sources(self, versions: Sequence[VersionKey]) -> dict[VersionKey, BundleSource]:
        """The source text of these configuration versions (those that exist)."""
        if not versions:
            return {}
        cv = tables.config_versions
        rows = await self._session.execute(
            sa.select(cv.c.tenant_id, cv.c.version, cv.c.source_text).where(
                sa.tuple_(cv.c.tenant_id, cv.c.version).in_(sorted(set(versions)))
            )
        )
        return {(r.tenant_id, r.version): BundleSource(r.tenant_id, r.version, r.source_text) for r in rows}

    async def latest_config(self, tenant_id: str) -> ConfigVersion | None:
        c = tables.config_versions
        row = (
            await self._session.execute(
                sa.select(c).where(c.c.tenant_id == tenant_id).order_by(c.c.version.desc()).limit(1)
            )
        ).first()
        if row is None:
            return None
        return ConfigVersion(row.tenant_id, row.version, row.bundle, row.source_text, row.created_at)

    async def latest_source(self, tenant_id: str, *, only_with_slos: bool = False) -> BundleSource | None:
        """The tenant's latest version as parsing needs it; `only_with_slos`: None unless its bundle has SLOs
        (asked of the stored JSONB in the database, which is not read)."""
        c = tables.config_versions
        has_slos = sa.func.jsonb_array_length(sa.func.coalesce(c.c.bundle["slos"], sa.text("'[]'::jsonb"))) > 0
        # Without SLOs the text is not even read (a thousand policies: megabytes, every SLO pass).
        text = sa.case((has_slos, c.c.source_text), else_=None) if only_with_slos else c.c.source_text
        row = (
            await self._session.execute(
                sa.select(c.c.tenant_id, c.c.version, text.label("source_text"))
                .where(c.c.tenant_id == tenant_id)
                .order_by(c.c.version.desc())
                .limit(1)
            )
        ).first()
        if row is None or row.source_text is None:
            return None
        return BundleSource(row.tenant_id, row.version, row.source_text)

    async def tenants_with_config(self) -> list[str]:
        """Every tenant that applied a configuration (the tenants the periodic SLO pass visits)."""
        c = tables.config_versions
        return list((await self._session.execute(sa.select(c.c.tenant_id).distinct())).scalars())

    async def config(self, tenant_id: str, version: int) -> BundleSource | None:
        sources = await self.bundle_sources([(tenant_id, version)])
        return sources.get((tenant_id, version))

    async def config_for_ticket(self, tenant_id: str, ticket_id: str, first_event_at: datetime) -> BundleSource | None:
        """The ticket's pinned version; a ticket seen for the first time is pinned to the latest."""
        v = tables.ticket_versions
        pinned = (
            await self._session.execute(
                sa.select(v.c.config_version).where(v.c.tenant_id == tenant_id, v.c.ticket_id == ticket_id)
            )
        ).scalar()
        if pinned is not None:
            return await self.config(tenant_id, pinned)
        latest = await self.latest_source(tenant_id)
        if latest is not None:
            await self._session.execute(
                insert(v)
                .values(
                    tenant_id=tenant_id,
                    ticket_id=ticket_id,
                    config_version=latest.version,
                    first_event_at=first_event_at,
                )
                .on_conflict_do_nothing()
            )
        return latest

    async def pin_version(self, tenant_id: str, ticket_ids: Sequence[str], version: int) -> None:
        v = tables.ticket_versions
        if ticket_ids:
            await self._session.execute(
                sa.update(v)
                .where(v.c.tenant_id == tenant_id, v.c.ticket_id.in_(ticket_ids))
                .values(config_version=version)
            )

    async def add_config(self, tenant_id: str, bundle: dict[str, Any], source_text: str) -> int:
        c = tables.config_versions
        # Serialise applies per tenant so versions are gap-free and never collide.
        await self._session.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 1))"), {"key": tenant_id}
        )
        current = (
            await self._session.execute(sa.select(sa.func.max(c.c.version)).where(c.c.tenant_id == tenant_id))
        ).scalar()
        version = int(current or 0) + 1
        await self._session.execute(
            sa.insert(c).values(tenant_id=tenant_id, version=version, bundle=bundle, source_text=source_text)
        )
        return version
