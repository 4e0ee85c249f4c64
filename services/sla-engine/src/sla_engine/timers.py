"""The durable timer loop: timers live in PostgreSQL, so they survive restarts and rebalances.

Any number of replicas may run it: `FOR UPDATE SKIP LOCKED` hands each due timer to one of them, and the
per-ticket lock plus the emitted-transition ledger make a transition publish once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sla_engine.handlers import ClockKeeper, Now
from sla_engine.repository import SqlSlaRepository

log = logging.getLogger(__name__)


class TimerLoop:
    def __init__(
        self, keeper: ClockKeeper, sessions: async_sessionmaker[AsyncSession], now: Now, *,
        batch_size: int, max_sleep_seconds: float,
    ) -> None:
        self._keeper = keeper
        self._sessions = sessions
        self._now = now
        self._batch_size = batch_size
        self._max_sleep = max_sleep_seconds
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                fired = await self._keeper.fire_due_timers(self._batch_size)
                if fired >= self._batch_size:
                    continue
                pause = await self._until_next_due()
            except Exception:  # a database fault must not end the loop
                log.exception("timer pass failed")
                pause = 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), pause)

    async def stop(self) -> None:
        self._stopping.set()

    async def _until_next_due(self) -> float:
        async with self._sessions() as session:
            next_due = await SqlSlaRepository(session).next_timer_due()
        if next_due is None:
            return self._max_sleep
        return max(0.0, min(self._max_sleep, (next_due - self._now()).total_seconds()))
