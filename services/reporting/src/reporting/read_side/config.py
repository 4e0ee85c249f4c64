"""The tenants' reporting configuration, versioned: every report reads it, `PUT /v1/reporting-config` writes it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from reporting import tables
from reporting.domain.config import ReportingConfig

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession


async def load_config(session: AsyncSession, tenant: str) -> tuple[ReportingConfig, int]:
    """The tenant's configuration and its version (the defaults, version 0, before the first save)."""
    row = (
        await session.execute(
            sa.select(tables.reporting_config.c.config, tables.reporting_config.c.version).where(
                tables.reporting_config.c.tenant_id == tenant
            )
        )
    ).first()
    if row is None:
        return ReportingConfig(), 0
    return ReportingConfig.model_validate(row.config), int(row.version)


class SqlConfigReader:
    """The tenants' configuration as the unit of work's `configs` reads it."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def load(self, tenant: str) -> tuple[ReportingConfig, int]:
        return await load_config(self._session, tenant)


async def save_config(session: AsyncSession, tenant: str, config: ReportingConfig, at: datetime) -> int:
    """Every change is a new version (the version a report was made with is in its header)."""
    t = tables.reporting_config
    statement = insert(t).values(tenant_id=tenant, version=1, config=config.model_dump(mode="json"), updated_at=at)
    upsert = statement.on_conflict_do_update(
        index_elements=[t.c.tenant_id],
        set_={"version": t.c.version + 1, "config": statement.excluded.config, "updated_at": at},
    ).returning(t.c.version)
    return int((await session.execute(upsert)).scalar_one())
