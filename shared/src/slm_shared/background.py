"""Background work that outlives faults: retry pauses, outage detection, per-item isolation.

Every component that holds a database or broker connection outside a request (outbox relay, timer loop,
periodic tasks, consumers) must survive the dependency going away and coming back. The pieces here are the
one place that decides how long to wait before trying again, which errors mean "a dependency is down" (retry
later, answer 503) rather than "this data is bad" (isolate and go on), and how one tenant's failure is kept
from stopping the pass for every tenant after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import socket
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
import sqlalchemy.exc
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError
from prometheus_client import Counter

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Iterable

log = logging.getLogger(__name__)

BACKGROUND_FAILURES = Counter(
    "slm_background_failures_total",
    "Failed background passes, per-tenant items and restarted background tasks, by task",
    ["task"],
)

Item = TypeVar("Item")
Result = TypeVar("Result")

# The errors that say "the server is not there (yet)", whatever the layer that raised them. The one definition
# of an outage: the consumer pipeline (retry the batch without end instead of setting it aside), background
# loops (end the pass, retry later), the outbox relay (reconnect) and HTTP (503 + Retry-After) all ask it.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused, reset, aborted, broken pipe
    TimeoutError,
    socket.gaierror,  # DNS: the server's name does not resolve (yet)
    asyncpg.exceptions.PostgresConnectionError,  # SQLSTATE class 08: cannot connect, connection gone
    asyncpg.exceptions.InternalClientError,  # a pooled connection left mid-operation by a server restart
    sqlalchemy.exc.DisconnectionError,  # the pool's pre-ping found a dead connection
    sqlalchemy.exc.TimeoutError,  # the pool waited in vain for a connection
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)
# SQLSTATEs of an unreachable or restarting server, besides class 08 (taken whole): admin and crash shutdown,
# cannot connect now (starting up, or recovering after a crash), too many connections, disk full. Not the rest
# of class 57: a statement timeout (57014) is something a record or a request can cause.
# Server going away or out of resources; and deadlock_detected (40P01), which only says "run it again".
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300", "53100", "40P01"})

_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ETIMEDOUT,
        errno.EPIPE,
    }
)


def is_unavailable(error: BaseException) -> bool:
    """True when `error`, or what caused it, says a database or broker is unreachable (retry later) rather
    than that the data or the code is wrong."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _UNAVAILABLE):
            return True
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return True
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and (sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES):
            return True
        if isinstance(current, asyncpg.exceptions.InterfaceError) and "connection is closed" in str(current):
            return True
        if isinstance(current, OSError) and (current.errno in _NETWORK_ERRNOS or "Connect call failed" in str(current)):
            return True
        original = getattr(current, "orig", None)
        current = original if isinstance(original, BaseException) else (current.__cause__ or current.__context__)
    return False


class Backoff:
    """Exponential pauses with jitter: replicas that lost the same server do not reconnect in lockstep.

    Capped low (3 s by default) because the target is to be working again within seconds of the server's return.
    """

    def __init__(
        self, initial_seconds: float = 0.2, maximum_seconds: float = 3.0, jitter: Callable[[], float] = random.random
    ) -> None:
        self._initial = initial_seconds
        self._maximum = maximum_seconds
        self._jitter = jitter
        self._attempts = 0

    def next_delay(self) -> float:
        """The next pause: half the exponential step plus a random share of the other half."""
        step = min(self._maximum, self._initial * 2.0 ** min(self._attempts, 30))
        self._attempts += 1
        return step / 2 + self._jitter() * step / 2

    def reset(self) -> None:
        self._attempts = 0


async def for_each_isolated(
    task: str,
    items: Iterable[Item],
    work: Callable[[Item], Awaitable[Result]],
    describe: Callable[[Item], str] = str,
) -> list[Result]:
    """`work` on every item in turn; an item that fails is logged, counted in `slm_background_failures_total`
    under `task`, and skipped, so one tenant's bad data never stops the pass for the tenants after it.

    An outage (`is_unavailable`) is not an item's fault: it ends the pass with the error, and the caller's
    loop retries later instead of logging one failure per remaining item.
    """
    results: list[Result] = []
    for item in items:
        try:
            results.append(await work(item))
        except Exception as error:
            if is_unavailable(error):
                raise
            BACKGROUND_FAILURES.labels(task).inc()
            log.exception("%s failed for %s; going on with the others", task, describe(item))
    return results


class Supervisor:
    """Keeps long-running background tasks running: one that raises, or returns before `stop`, is started again
    after a backoff pause, counted in `slm_background_failures_total{task}`, and listed in `restarting` until it
    runs again (the service reports unready meanwhile)."""

    def __init__(self, initial_seconds: float = 1.0, maximum_seconds: float = 30.0) -> None:
        self._initial = initial_seconds
        self._maximum = maximum_seconds
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        self.restarting: set[str] = set()

    def start(self, tasks: Iterable[tuple[str, Callable[[], Coroutine[Any, Any, None]]]]) -> None:
        self._running = True
        self._tasks = [asyncio.create_task(self._keep_running(name, run), name=name) for name, run in tasks]

    def stopping(self) -> None:
        """Called before the tasks' own stop hooks: their `run` returning is then the expected end."""
        self._running = False

    async def wait(self) -> None:
        for task in self._tasks:
            await task

    def alive(self) -> bool:
        """False if a supervisor itself ended while running (a bug: let liveness restart the process)."""
        return not self._running or not any(task.done() for task in self._tasks)

    async def _keep_running(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        backoff = Backoff(self._initial, self._maximum)
        while True:
            try:
                await run()
                if not self._running:
                    return
                log.error("background task %s ended while the service runs; restarting it", name)
            except Exception:
                log.exception("background task %s died; restarting it", name)
            if not self._running:
                return
            BACKGROUND_FAILURES.labels(name).inc()
            self.restarting.add(name)
            await asyncio.sleep(backoff.next_delay())
            self.restarting.discard(name)


class PeriodicTask:
    """Runs `work` every `interval_seconds` until stopped. A failed pass (database or broker away) is logged and
    the next interval retries: a background loop must never end on a fault."""

    def __init__(self, name: str, interval_seconds: float, work: Callable[[], Awaitable[object]]) -> None:
        self._name = name
        self._interval = interval_seconds
        self._work = work
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._work()
            except Exception as error:
                BACKGROUND_FAILURES.labels(self._name).inc()
                log.warning("%s failed: %r", self._name, error, exc_info=not is_unavailable(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)

    async def stop(self) -> None:
        self._stopping.set()
