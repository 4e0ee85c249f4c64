"""Database plumbing: engine, session factory, and the refusal to run on an unmigrated database."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

if TYPE_CHECKING:
    from pathlib import Path


class DatabaseNotMigrated(RuntimeError):
    """The database schema is not at the revision this code needs."""


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_head(alembic_ini: Path) -> str | None:
    """The head revision, read from the migration files' `revision`/`down_revision` literals.

    Not through Alembic's ScriptDirectory: importing alembic (with mako and pygments) was about a seventh of a
    service's start-up time, for a check that needs two string literals per file. tests/unit/shared checks
    that both agree."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((alembic_ini.parent / "migrations" / "versions").glob("*.py")):
        values = _module_literals(path, ("revision", "down_revision"))
        if isinstance(values.get("revision"), str):
            revisions.add(values["revision"])
        down = values.get("down_revision")
        parents.update([down] if isinstance(down, str) else list(down or ()))
    heads = revisions - parents
    if len(heads) > 1:
        raise DatabaseNotMigrated(f"several Alembic heads in {alembic_ini.parent}: {sorted(heads)}; merge them")
    return next(iter(heads), None)


def _module_literals(path: Path, names: tuple[str, ...]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for node in ast.parse(path.read_text(), str(path)).body:
        target = (
            node.targets[0]
            if isinstance(node, ast.Assign) and len(node.targets) == 1
            else (node.target if isinstance(node, ast.AnnAssign) else None)
        )
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        if isinstance(target, ast.Name) and target.id in names and value is not None:
            found[target.id] = ast.literal_eval(value)
    return found


async def ensure_migrated(engine: AsyncEngine, alembic_ini: Path, service: str) -> None:
    """Raise `DatabaseNotMigrated` unless the database is at the code's Alembic head."""
    expected = alembic_head(alembic_ini)
    async with engine.connect() as connection:
        has_table = await connection.run_sync(lambda sync: sa.inspect(sync).has_table("alembic_version"))
        current = None
        if has_table:
            current = (await connection.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar()
    if current != expected:
        raise DatabaseNotMigrated(
            f"{service}: database is at revision {current or 'none'}, the code needs {expected}; "
            f"run `make migrate` (or `alembic -c services/{service}/alembic.ini upgrade head`) first"
        )
