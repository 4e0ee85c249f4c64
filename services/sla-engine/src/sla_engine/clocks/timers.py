"""The reconcile loop: works off the `timers` table, the per-ticket due queue in PostgreSQL.

A ticket is due when new snapshots arrived (the consumer marks it due now) or when a warning or breach of one
of its running clocks comes due. Timers live in PostgreSQL, so they survive restarts and rebalances, and any
number of replicas may run the loop: `FOR UPDATE SKIP LOCKED` hands each due ticket to one of them, and the
per-ticket lock plus the emitted-transition ledger make a transition publish once.

Each round takes at most `batch_size` due tickets, `per_tenant` of each tenant, round-robin across tenants (a
tenant's backlog never holds another tenant's clocks hostage), and stops evaluating after `round_seconds`.
Between rounds, and while a round's tickets are evaluated, the event loop runs heartbeats, consumers and HTTP.
`rounds_in_flight` rounds run at once, each its own transaction on its own hash slice of the tickets (so one
never finds its due tickets held by the other; SKIP LOCKED still parts replicas): while one waits for its
evaluation (a worker process), the other does its database work, so both cores are busy.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from slm_shared.background import Backoff, is_unavailable

if TYPE_CHECKING:
    from sla_engine.clocks.handlers import ClockKeeper
    from sla_engine.ports import EngineUnits
    from slm_shared.time_source import Now

log = logging.getLogger(__name__)

# After a round that reconciled nothing (the due tickets' locks are held elsewhere) wait this long at least,
# instead of asking again at once.
IDLE_PAUSE_SECONDS = 0.05


class TimerLoop:
    def __init__(
        self,
        keeper: ClockKeeper,
        units: EngineUnits,
        now: Now,
        *,
        batch_size: int,
        max_sleep_seconds: float,
        per_tenant: int | None = None,
        round_seconds: float = 0.2,
        rounds_in_flight: int = 1,
    ) -> None:
        self._keeper = keeper
        self._units = units
        self._now = now
        self._batch_size = batch_size
        self._per_tenant = per_tenant or batch_size
        self._round_seconds = round_seconds
        self._max_sleep = max_sleep_seconds
        self._rounds_in_flight = rounds_in_flight
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        try:
            await self._keeper.start()
            await asyncio.gather(
                *(self._rounds((index, self._rounds_in_flight)) for index in range(self._rounds_in_flight))
            )
        finally:
            self._keeper.close()

    async def _rounds(self, part: tuple[int, int]) -> None:
        """One round in flight, taking slice `part` of the due tickets: the rounds never contend for a row."""
        backoff = Backoff()  # after a failed round: short jittered pauses, so the loop is back soon after the database
        while not self._stopping.is_set():
            self._keeper.tickets_due.clear()  # tickets made due from here on wake the wait below
            try:
                if await self._keeper.reconcile_due(self._batch_size, self._per_tenant, self._round_seconds, part):
                    backoff.reset()
                    continue  # more may be due: the next round at once (the loop yielded during this one)
                pause = max(IDLE_PAUSE_SECONDS, await self._until_next_due())
                backoff.reset()
            except Exception as error:  # a database fault must not end the loop
                # An outage is one line per round, not a traceback; anything else keeps its traceback.
                log.warning("reconcile round failed: %r", error, exc_info=not is_unavailable(error))
                pause = backoff.next_delay()
            await self._wait(pause)

    async def stop(self) -> None:
        self._stopping.set()

    async def _wait(self, pause: float) -> None:
        """Until `pause` has passed, the consumer made tickets due, or the loop is stopping."""
        waits = [asyncio.ensure_future(self._stopping.wait()), asyncio.ensure_future(self._keeper.tickets_due.wait())]
        await asyncio.wait(waits, timeout=pause, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()

    async def _until_next_due(self) -> float:
        async with self._units() as uow:
            next_due = await uow.timers.next_timer_due()
        if next_due is None:
            return self._max_sleep
        return max(0.0, min(self._max_sleep, (next_due - self._now()).total_seconds()))
