"""One in-process intake (real Kafka, real PostgreSQL) for the module's tests, and tenants with keys."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from scripts.localstack import Stack
from tests.integration.intake.support import Keys, RunningIntake, intake_engine, intake_settings, running_intake


@pytest.fixture(scope="session")
async def engine(stack: Stack) -> AsyncIterator[AsyncEngine]:
    created = intake_engine(stack)
    yield created
    await created.dispose()


@pytest.fixture(scope="session")
def keys(engine: AsyncEngine) -> Keys:
    return Keys(engine)


@pytest.fixture(scope="session")
async def intake(stack: Stack) -> AsyncIterator[RunningIntake]:
    async with running_intake(intake_settings(stack)) as running:
        yield running
