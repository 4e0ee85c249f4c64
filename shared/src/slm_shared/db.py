"""Database plumbing: engine, session factory, and the refusal to run on an unmigrated database."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


class DatabaseNotMigrated(RuntimeError):
    """The database schema is not at the revision this code needs."""


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_head(alembic_ini: Path) -> str | None:
    config = Config(str(alembic_ini))
    config.set_main_option("script_location", str(alembic_ini.parent / "migrations"))
    return ScriptDirectory.from_config(config).get_current_head()


async def ensure_migrated(engine: AsyncEngine, alembic_ini: Path, service: str) -> None:
    """Raise `DatabaseNotMigrated` unless the database is at the code's Alembic head."""
    expected = alembic_head(alembic_ini)
    async with engine.connect() as connection:
        has_table = await connection.run_sync(
            lambda sync: sa.inspect(sync).has_table("alembic_version")
        )
        current = None
        if has_table:
            current = (await connection.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar()
    if current != expected:
        raise DatabaseNotMigrated(
            f"{service}: database is at revision {current or 'none'}, the code needs {expected}; "
            f"run `make migrate` (or `alembic -c services/{service}/alembic.ini upgrade head`) first"
        )
