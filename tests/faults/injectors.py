"""The faults: each one injected, lifted, then recovery measured (ready, and a probe ticket flowing end to end)."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from scripts.processes import ServiceProcess
from tests.faults.fleet import Fleet
from tests.faults.infra import LocalInfra
from tests.faults.proxy import TcpFaultProxy

log = logging.getLogger("faults")
# Past this, an instance did not recover by itself and is restarted by hand (a `manual` restart, which fails
# the run). Generous: a SIGKILLed instance took 58 s to be ready on a 2-core machine at load 20, and the suite
# must not fail on a slow machine; how long recovery took is the table's figure, not a pass mark.
RECOVERY_BUDGET_SECONDS = 180.0


@dataclass
class FaultContext:
    fleet: Fleet
    infra: LocalInfra
    proxy: TcpFaultProxy
    rng: random.Random
    stall_seconds: float  # longer than the consumers' session timeout (aiokafka's default 10 s)
    blackhole_seconds: float
    latency_seconds: float

    def victim(self, service: str) -> ServiceProcess:
        """One instance of `service`, at random."""
        return self.rng.choice(self.fleet.instances[service])


@dataclass
class FaultOutcome:
    kind: str
    target: str
    began_at: datetime
    recovered_at: datetime  # downtime window: timers due in it must fire once after recovery
    time_to_ready: float | None  # from the dependency's return (or the relaunch) to every instance ready
    time_to_flow: float | None  # from the same instant to a probe ticket visible in reporting
    manual_restarts: int
    crash_restarts: int
    stuck_at: str | None = None  # how far the probe ticket got when it never flowed

    @property
    def recovered(self) -> bool:
        return self.time_to_flow is not None and self.manual_restarts == 0


class Fault(Protocol):
    kind: str
    target: str

    async def inject_and_lift(self, context: FaultContext) -> float:
        """Inject the fault, lift it; returns the monotonic instant from which recovery is timed."""


@dataclass
class KillService:
    target: str
    kind: str = "SIGKILL service"

    async def inject_and_lift(self, context: FaultContext) -> float:
        victim = context.victim(self.target)
        await asyncio.to_thread(victim.kill)
        victim.launch()  # the supervisor's restart, as Kubernetes does for a crashed container
        return time.monotonic()


@dataclass
class StallService:
    target: str
    kind: str = "SIGSTOP stall"

    async def inject_and_lift(self, context: FaultContext) -> float:
        victim = context.victim(self.target)
        assert victim.process is not None
        os.kill(victim.process.pid, signal.SIGSTOP)
        await asyncio.sleep(context.stall_seconds)
        os.kill(victim.process.pid, signal.SIGCONT)
        return time.monotonic()


@dataclass
class RollingRestart:
    target: str
    kind: str = "SIGTERM rolling restart"

    async def inject_and_lift(self, context: FaultContext) -> float:
        for instance in context.fleet.instances[self.target]:
            log.info("SIGTERM %s", instance.name)
            try:
                await asyncio.to_thread(instance.stop, 60.0)
            except subprocess.TimeoutExpired:  # did not drain in a minute: stop() killed it
                context.fleet.crash_restarts += 1
            instance.launch()
            try:  # the next one only once this one serves
                await asyncio.to_thread(instance.wait_ready, RECOVERY_BUDGET_SECONDS)
            except (TimeoutError, RuntimeError) as error:  # not ready or exited: the recovery measurement says so
                log.warning("rolling restart: %s", error)
                break
        return time.monotonic()


@dataclass
class Outage:
    """A dependency taken away for a while and given back: the broker or PostgreSQL process, or the proxy's
    path to PostgreSQL. Recovery is timed from the moment it is back."""

    kind: str
    target: str
    take_away: Callable[[FaultContext], object]  # blocking calls: run in a thread
    give_back: Callable[[FaultContext], object]
    seconds: Callable[[FaultContext], float]  # how long it stays away

    async def inject_and_lift(self, context: FaultContext) -> float:
        await asyncio.to_thread(self.take_away, context)
        await asyncio.sleep(self.seconds(context))
        await asyncio.to_thread(self.give_back, context)
        return time.monotonic()


def _set_latency(context: FaultContext, seconds: float) -> None:
    context.proxy.latency = seconds


DOWN_SECONDS = 5.0  # a process fault: the broker or PostgreSQL stays down this long, then `stack.sh up`
KILL_BROKER = Outage(
    "broker kill -9", "kafka", lambda c: c.infra.kill_broker(), lambda c: c.infra.bring_back(), lambda c: DOWN_SECONDS
)
STOP_POSTGRES = Outage(
    "postgres immediate stop",
    "postgresql",
    lambda c: c.infra.stop_postgres_immediately(),
    lambda c: c.infra.bring_back(),
    lambda c: DOWN_SECONDS,
)
PROXY_LATENCY = Outage(
    "db latency",
    "postgresql proxy",
    lambda c: _set_latency(c, c.latency_seconds),
    lambda c: _set_latency(c, 0.0),
    lambda c: 10.0,
)
# Every connection reset, then again a second later, when the pools have reconnected.
PROXY_RESET = Outage(
    "db connection reset",
    "postgresql proxy",
    lambda c: c.proxy.reset_connections(),
    lambda c: c.proxy.reset_connections(),
    lambda c: 1.0,
)
PROXY_BLACKHOLE = Outage(
    "db blackhole",
    "postgresql proxy",
    lambda c: c.proxy.blackhole(c.blackhole_seconds),
    lambda c: None,
    lambda c: c.blackhole_seconds,
)
# Every fault type, in the order the table lists them.
FAULT_KINDS = (
    KillService.kind,
    StallService.kind,
    RollingRestart.kind,
    KILL_BROKER.kind,
    STOP_POSTGRES.kind,
    PROXY_LATENCY.kind,
    PROXY_RESET.kind,
    PROXY_BLACKHOLE.kind,
)


def schedule(
    services: tuple[str, ...],
    rounds: int,
    rng: random.Random,
    *,
    postgres: bool,
    stalled: tuple[str, ...],
    rolled: tuple[str, ...],
) -> list[Fault]:
    """Every fault type, `rounds` times, in a shuffled order; SIGKILL against every service."""
    one_round: list[Fault] = [
        *(KillService(s) for s in services),
        *(StallService(s) for s in stalled),
        *(RollingRestart(s) for s in rolled),
        KILL_BROKER,
        PROXY_LATENCY,
        PROXY_RESET,
        PROXY_BLACKHOLE,
    ]
    if postgres:
        one_round.append(STOP_POSTGRES)
    faults = []
    for _ in range(rounds):  # each round shuffled on its own: the first one holds every fault type
        rng.shuffle(one_round)
        faults.extend(one_round)
    return faults


async def run_fault(fault: Fault, context: FaultContext) -> FaultOutcome:
    fleet = context.fleet
    crashes, manual = fleet.crash_restarts, fleet.manual_restarts
    began_at = datetime.now(UTC)
    log.info("injecting %s into %s", fault.kind, fault.target)
    lifted = await fault.inject_and_lift(context)
    time_to_ready = time_to_flow = None
    if await fleet.wait_ready(RECOVERY_BUDGET_SECONDS) is not None:
        time_to_ready = time.monotonic() - lifted
        if await fleet.probe_flows(RECOVERY_BUDGET_SECONDS) is not None:
            time_to_flow = time.monotonic() - lifted
    stuck_at = None
    if time_to_flow is None:  # not recovered by itself: restart by hand so the run can go on, and count it
        stuck_at = fleet.probe_stage
        log.warning(
            "%s %s: the probe did not flow within %.0f s: %s",
            fault.kind,
            fault.target,
            RECOVERY_BUDGET_SECONDS,
            stuck_at,
        )
        await fleet.restart_by_hand()
        await fleet.wait_ready(RECOVERY_BUDGET_SECONDS)
        await fleet.probe_flows(RECOVERY_BUDGET_SECONDS)
    outcome = FaultOutcome(
        fault.kind,
        fault.target,
        began_at,
        datetime.now(UTC),
        time_to_ready,
        time_to_flow,
        fleet.manual_restarts - manual,
        fleet.crash_restarts - crashes,
        stuck_at,
    )
    log.info(
        "%s %s: ready after %s s, flowing after %s s, %d crashes, %d manual restarts",
        outcome.kind,
        outcome.target,
        time_to_ready,
        time_to_flow,
        outcome.crash_restarts,
        outcome.manual_restarts,
    )
    return outcome


async def fault_loop(
    faults: list[Fault], context: FaultContext, max_gap_seconds: float, until: float | None = None, every_kind: int = 0
) -> list[FaultOutcome]:
    """The faults in turn; past the monotonic instant `until` (the stream's end) no new one starts once the
    first `every_kind` (a round: every fault type) ran, so a slow machine does not stretch the run."""
    outcomes = []
    for index, fault in enumerate(faults):
        if until is not None and index >= every_kind and time.monotonic() > until:
            log.info("the stream is over: %d of %d faults injected", index, len(faults))
            break
        await asyncio.sleep(context.rng.uniform(0.5, max_gap_seconds))  # a random moment of the stream
        outcomes.append(await run_fault(fault, context))
    return outcomes
