"""One in-process intake (real Kafka, real PostgreSQL) for the package's tests, and tenants with keys.

Package-scoped, not session-scoped: the in-process intake's outbox relay runs on the test loop, and a later
package's test that blocks that loop (a synchronous wait on a service process) could freeze it in the middle of a
pass, holding the intake database's publishing lock, so that no intake process could publish (a key announcement
never reached the sla-engine of tests/integration/recovery)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from scripts.localstack import Stack
from tests.integration.intake.support import Keys, RunningIntake, intake_engine, intake_settings, running_intake


@pytest.fixture(scope="package")
async def engine(stack: Stack) -> AsyncIterator[AsyncEngine]:
    created = intake_engine(stack)
    yield created
    await created.dispose()


@pytest.fixture(scope="package")
def keys(engine: AsyncEngine) -> Keys:
    return Keys(engine)


@pytest.fixture(scope="package")
async def intake(stack: Stack) -> AsyncIterator[RunningIntake]:
    async with running_intake(intake_settings(stack)) as running:
        yield running
