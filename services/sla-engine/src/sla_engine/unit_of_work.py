"""The sla-engine's unit of work: one transaction and the repositories of both sub-domains working inside it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sla_engine import tables
from sla_engine.bundles.repository import SqlBundleRepository
from sla_engine.clocks.due_queue import SqlTimerRepository
from sla_engine.clocks.states import SqlClockStateRepository
from sla_engine.clocks.tickets import SqlTicketRepository
from sla_engine.clocks.timeline_cache import TimelineCache
from sla_engine.slos.evaluations import SqlSloEvaluationRepository
from sla_engine.slos.rollups import SqlRollupRepository
from sla_engine.slos.series import SqlSeriesRepository
from sla_engine.slos.signals import SqlSignalRepository
from slm_shared.inbox import Inbox
from slm_shared.outbox import Outbox
from slm_shared.unit_of_work import SessionInbox, SessionOutbox, SqlUnitOfWork

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

# The signal consumer's inbox; the ticket consumer writes its inbox rows in its own store statement
# (`SqlTicketRepository.store_snapshots`).
SIGNALS_INBOX = "sla-engine.signals"


class EngineUnitOfWork(SqlUnitOfWork):
    """One transaction of the engine: handlers, loops and HTTP queries open one and work through these."""

    tickets: SqlTicketRepository
    states: SqlClockStateRepository
    timers: SqlTimerRepository
    bundles: SqlBundleRepository
    signals: SqlSignalRepository
    rollups: SqlRollupRepository
    series: SqlSeriesRepository
    evaluations: SqlSloEvaluationRepository
    outbox: SessionOutbox
    inbox: SessionInbox

    def __init__(self, sessions: async_sessionmaker[AsyncSession], timelines: TimelineCache | None = None) -> None:
        super().__init__(sessions)
        self._timelines = timelines

    def _open(self, session: AsyncSession) -> None:
        self.tickets = SqlTicketRepository(session)
        self.states = SqlClockStateRepository(session, self._timelines)
        self.timers = SqlTimerRepository(session)
        self.bundles = SqlBundleRepository(session)
        self.signals = SqlSignalRepository(session)
        self.rollups = SqlRollupRepository(session)
        self.series = SqlSeriesRepository(session)
        self.evaluations = SqlSloEvaluationRepository(session)
        self.outbox = SessionOutbox(_OUTBOX, session)
        self.inbox = SessionInbox(_SIGNALS, session)

    def savepoint(self) -> AbstractAsyncContextManager[object]:
        """A nested transaction: work inside it that fails is rolled back alone."""
        return self.session.begin_nested()


_OUTBOX = Outbox(tables.outbox)
_SIGNALS = Inbox(tables.inbox, SIGNALS_INBOX)


def engine_units(
    sessions: async_sessionmaker[AsyncSession], timelines: TimelineCache | None = None
) -> Callable[[], EngineUnitOfWork]:
    """The factory `create_app` injects: one unit per transaction, all sharing one database's `timelines` cache
    (decoded timeline rows stay right across transactions: clocks/timeline_cache.py says why)."""
    shared = timelines if timelines is not None else TimelineCache()
    return lambda: EngineUnitOfWork(sessions, shared)
