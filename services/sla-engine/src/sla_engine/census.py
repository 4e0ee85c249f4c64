"""The `slm_clocks` gauge: how many clocks stand in each state, counted in PostgreSQL every interval.

Counted from the table rather than kept in memory, so it is right after a restart, a rebalance or a
recalculation. Every replica reports the same totals (use `max`, not `sum`, across pods).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import get_args

from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sla_engine.domain.results import ClockState
from sla_engine.repository import SqlSlaRepository

log = logging.getLogger(__name__)

CLOCKS = Gauge("slm_clocks", "Clocks by state, every tenant; breached=true on a running clock means overdue",
               ["state", "breached"])


class ClockCensus:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], interval_seconds: float) -> None:
        self._sessions = sessions
        self._interval = interval_seconds
        self._stopping = asyncio.Event()

    async def count(self) -> dict[tuple[str, bool], int]:
        async with self._sessions() as session:
            counts = await SqlSlaRepository(session).count_clocks()
        for state in get_args(ClockState):  # states with no clock read 0, not "no data"
            for breached in (False, True):
                CLOCKS.labels(state, str(breached).lower()).set(counts.get((state, breached), 0))
        return counts

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.count()
            except Exception as error:  # a database fault skips one count; the gauge keeps the last one
                log.warning("clock census failed: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)

    async def stop(self) -> None:
        self._stopping.set()
