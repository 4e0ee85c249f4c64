"""The kit's unit of work keeps only what is committed and always closes its session (no database needed:
a recording stand-in for the session, since the behaviour under test is the unit's, not SQLAlchemy's)."""

from __future__ import annotations

from typing import Any

import pytest

from slm_shared.unit_of_work import SqlUnitOfWork


class RecordingSession:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.open_transaction = False

    def work(self) -> None:
        self.open_transaction = True

    def in_transaction(self) -> bool:
        return self.open_transaction

    async def commit(self) -> None:
        self.calls.append("commit")
        self.open_transaction = False

    async def rollback(self) -> None:
        self.calls.append("rollback")
        self.open_transaction = False

    async def close(self) -> None:
        self.calls.append("close")


class Unit(SqlUnitOfWork):
    opened_with: Any = None

    def _open(self, session: Any) -> None:
        self.opened_with = session


def unit_over(session: RecordingSession) -> Unit:
    return Unit(lambda: session)  # type: ignore[arg-type]


async def test_committed_work_is_kept_and_the_session_closed() -> None:
    session = RecordingSession()
    async with unit_over(session) as unit:
        assert unit.opened_with is session
        session.work()
        await unit.commit()
    assert session.calls == ["commit", "close"]


async def test_work_left_uncommitted_is_rolled_back() -> None:
    session = RecordingSession()
    async with unit_over(session):
        session.work()
    assert session.calls == ["rollback", "close"]


async def test_an_error_rolls_back_and_still_closes() -> None:
    session = RecordingSession()

    async def failing_batch() -> None:
        async with unit_over(session):
            session.work()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await failing_batch()
    assert session.calls == ["rollback", "close"]
