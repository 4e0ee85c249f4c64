"""What the sla-engine's in-process integration tests share: a session factory on its database and a clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scripts.localstack import Stack
from slm_shared.db import create_engine, session_factory


class Clock:
    """`now()` for the code under test; a test moves it by setting `at`."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
async def sessions(stack: Stack) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(stack.database_urls["sla-engine"], pool_size=2)
    yield session_factory(engine)
    await engine.dispose()
