"""Where the reconcile loop evaluates tickets: a worker process beside the service's event loop, or a thread.

Evaluating a ticket (`reconcile_ticket`) is pure CPU. In a thread it shares one interpreter with the event
loop, so it adds no parallelism, and every socket call of the loop waits for the thread's switch interval to
get the interpreter back (in the profile of issue 11, 15 % of the loop's samples sat in `transport.write`).
A worker process evaluates on the other core while the loop does the database and Kafka work of the other
round in flight (timers.py runs two), and the loop never waits for it.

What crosses the process boundary, pickled: a chunk of tickets' states (timeline, emitted keys, saved clock
rows, sequences) going, their reconciliations and evaluation times coming back; a few kilobytes a ticket. A
bundle crosses once per version: the worker keeps the bundles it parsed by (tenant, version), which never
change, and is sent a version's source text only when the parent has not sent it before; a worker that has
dropped it (more versions than it keeps) or was restarted says which it lacks and is sent them again.

`ThreadEvaluator` is the same interface in one worker thread (settings `reconcile_processes=0`, and the tests
that drive the reconcile loop in their own process).
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sla_engine.bundles.cache import parse_source
from sla_engine.clocks.publication import ReconciledTicket, reconciled_ticket
from sla_engine.domain.reconciliation import ConfigRef, TicketState, reconcile_ticket
from sla_engine.ports import BundleSource, VersionKey

if TYPE_CHECKING:
    from datetime import datetime

    from sla_engine.domain.bundle import Bundle

# Parsed bundles a worker process keeps (a thousand-policy bundle is tens of megabytes parsed).
WORKER_BUNDLES = 32

Sources = Callable[[Sequence[VersionKey]], Awaitable[dict[VersionKey, BundleSource]]]


@dataclass
class Job:
    state: TicketState
    version: VersionKey | None
    compact: bool = True  # False: the reconciliation keeps its clocks (a recalculation compares them)


@dataclass(frozen=True)
class Outcome:
    """One ticket's reconciliation, or the traceback of the fault that stopped it; and the CPU time it took."""

    result: ReconciledTicket | None
    error: str | None
    seconds: float


class Evaluator(Protocol):
    async def start(self) -> None: ...
    async def evaluate(self, jobs: Sequence[Job], now: datetime, sources: Sources) -> list[Outcome]: ...
    def close(self) -> None: ...


class _MissingBundles(Exception):
    def __init__(self, versions: list[VersionKey]) -> None:
        super().__init__(versions)
        self.versions = versions


# -- in the worker -----------------------------------------------------------------------------------------

_bundles: OrderedDict[VersionKey, Bundle] = OrderedDict()


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _quiet_worker(parent: int) -> None:
    # A Ctrl-C reaches the whole process group: the parent decides when the worker stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A parent that ends without shutting the pool down (SIGKILLed, or SIGTERMed: uvicorn re-raises the signal after
    # its shutdown, so no exit handler runs) left the worker behind, orphaned, with ~100 MiB: on Linux the kernel
    # kills it with its parent.
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _ready() -> None:
    """Nothing: the worker has imported what evaluating needs."""


def _evaluate_chunk(
    jobs: list[Job], sources: dict[VersionKey, BundleSource], now: datetime, absent: frozenset[VersionKey] = frozenset()
) -> tuple[list[Outcome], int]:
    """Reconcile each job; returns the outcomes and how many bundles were parsed for them. Jobs of an `absent`
    version (not stored) fail alone."""
    parses = 0
    for version, source in sources.items():
        if version not in _bundles:
            _bundles[version] = parse_source(source)
            parses += 1
            while len(_bundles) > WORKER_BUNDLES:
                _bundles.popitem(last=False)
    missing = sorted(
        {
            job.version
            for job in jobs
            if job.version is not None and job.version not in _bundles and job.version not in absent
        }
    )
    if missing:
        raise _MissingBundles(missing)
    return [
        Outcome(None, f"configuration version {job.version} not found", 0.0)
        if job.version in absent
        else _evaluate_one(job, now)
        for job in jobs
    ], parses


def _evaluate_one(job: Job, now: datetime) -> Outcome:
    # CPU time, not wall time: on a busy machine the wall time is mostly waiting for a core, and chunk sizes
    # and the tenants' fair share are about what a ticket costs.
    started = time.process_time()
    try:
        if job.version is not None:
            _bundles.move_to_end(job.version)
            job.state.config = ConfigRef(job.version[1], _bundles[job.version])
        # Mapped to rows and serialized events here, in the worker: the parent only inserts them.
        result = reconciled_ticket(reconcile_ticket(job.state, now), keep_clocks=not job.compact)
    except Exception:  # a bug in one ticket's evaluation must not block the others
        return Outcome(None, traceback.format_exc(), time.process_time() - started)
    return Outcome(result, None, time.process_time() - started)


# -- in the service --------------------------------------------------------------------------------------


class ProcessEvaluator:
    """Evaluates in one worker process (started on first use, restarted if it dies)."""

    def __init__(self, on_parse: Callable[[int], None] = lambda count: None) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._sent: set[VersionKey] = set()  # versions whose text this worker has been sent
        self._on_parse = on_parse

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: a fresh interpreter, none of the parent's threads, sockets or event loop.
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_quiet_worker,
                initargs=(os.getpid(),),
            )
            self._sent.clear()
        return self._pool

    async def start(self) -> None:
        """Start the worker now (a fresh interpreter takes seconds to import), not with the first round."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor(), _ready)
        except BrokenProcessPool:
            self.close()
            raise

    async def evaluate(self, jobs: Sequence[Job], now: datetime, sources: Sources) -> list[Outcome]:
        loop = asyncio.get_running_loop()
        wanted = sorted({job.version for job in jobs if job.version is not None} - self._sent)
        for _ in range(2):  # a second time only if the worker had dropped bundles it was sent
            texts = await sources(wanted) if wanted else {}
            absent = frozenset(wanted) - texts.keys()
            pool = self._executor()
            try:
                outcomes, parses = await loop.run_in_executor(pool, _evaluate_chunk, list(jobs), texts, now, absent)
            except _MissingBundles as missing:
                self._sent.difference_update(missing.versions)
                wanted = missing.versions
                continue
            except BrokenProcessPool:
                self.close()  # the next round starts a new worker; this one's transaction is rolled back
                raise
            self._sent.update(texts)
            self._on_parse(parses)
            return outcomes
        raise RuntimeError(f"the evaluation worker lacks bundles it was just sent: {wanted}")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class ThreadEvaluator:
    """Evaluates in one worker thread with the service's own `BundleCache` (parsing there, not on the loop)."""

    def __init__(self, bundle: Callable[[BundleSource], Bundle], cached: Callable[[VersionKey], Bundle | None]) -> None:
        self._bundle = bundle
        self._cached = cached
        self._thread: Executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clock-evaluation")

    async def start(self) -> None:
        """Nothing to start."""

    async def evaluate(self, jobs: Sequence[Job], now: datetime, sources: Sources) -> list[Outcome]:
        held = {
            version: bundle
            for version in {job.version for job in jobs if job.version is not None}
            if (bundle := self._cached(version)) is not None
        }
        texts = await sources(sorted({job.version for job in jobs if job.version is not None} - held.keys()))

        def run() -> list[Outcome]:
            for version, source in texts.items():
                held[version] = self._bundle(source)
            outcomes = []
            for job in jobs:
                if job.version is not None and job.version not in held:
                    outcomes.append(Outcome(None, f"configuration version {job.version} not found", 0.0))
                    continue
                started = time.thread_time()  # CPU time, as in the worker process
                try:
                    if job.version is not None:
                        job.state.config = ConfigRef(job.version[1], held[job.version])
                    result = reconciled_ticket(reconcile_ticket(job.state, now), keep_clocks=not job.compact)
                    outcome = Outcome(result, None, 0.0)
                except Exception:
                    outcome = Outcome(None, traceback.format_exc(), 0.0)
                outcomes.append(Outcome(outcome.result, outcome.error, time.thread_time() - started))
            return outcomes

        return await asyncio.get_running_loop().run_in_executor(self._thread, run)

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
