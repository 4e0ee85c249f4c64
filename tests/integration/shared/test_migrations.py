"""Each service's migrations go up, down and up again, and a service refuses an unmigrated database."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from scripts.localstack import REPO, SERVICES, Stack
from slm_shared.outbox import asyncpg_dsn

pytestmark = pytest.mark.integration


async def _admin(stack: Stack) -> asyncpg.Connection:
    base = stack.database_urls["intake"].rsplit("/", 1)[0]
    return await asyncpg.connect(asyncpg_dsn(f"{base}/postgres"))


@pytest.fixture
async def empty_database(stack: Stack) -> AsyncIterator[str]:
    name = f"migrate_{uuid.uuid4().hex[:8]}"
    admin = await _admin(stack)
    await admin.execute(f'CREATE DATABASE "{name}"')
    yield stack.database_urls["intake"].rsplit("/", 1)[0] + f"/{name}"
    await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.close()


def alembic(service: str, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    prefix = service.replace("-", "_").upper()
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "alembic"), "-c", str(REPO / "services" / service / "alembic.ini"), *args],
        env={**os.environ, f"{prefix}_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def table_names(url: str) -> set[str]:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await connection.close()
    return {row["tablename"] for row in rows}


@pytest.mark.parametrize("service", SERVICES)
async def test_migrations_go_up_down_and_up_again(service: str, empty_database: str) -> None:
    assert alembic(service, empty_database, "upgrade", "head").returncode == 0
    migrated = await table_names(empty_database)
    assert {"outbox", "api_keys", "alembic_version"} <= migrated
    assert alembic(service, empty_database, "downgrade", "base").returncode == 0
    assert await table_names(empty_database) == {"alembic_version"}
    assert alembic(service, empty_database, "upgrade", "head").returncode == 0
    assert await table_names(empty_database) == migrated


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_refuses_to_start_on_an_unmigrated_database(service: str, empty_database: str, stack: Stack) -> None:
    prefix = service.replace("-", "_").upper()
    completed = subprocess.run(
        [str(REPO / ".venv" / "bin" / f"slm-{service}"), "serve"],
        env={
            **os.environ,
            **stack.service_env(service),
            f"{prefix}_DATABASE_URL": empty_database,
            f"{prefix}_HTTP_PORT": "0",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode != 0
    assert "run `make migrate`" in completed.stdout + completed.stderr
